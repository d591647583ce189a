// Naive attention, pass 1 of 3: the full score matrix S = scale · Q·Kᵀ written to global memory
// (f32), masked entries (causal, sliding window) set to a large negative number. With the softmax
// and PV passes, this materializes the scores: the textbook baseline the fused kernel beats.
//
// Layout: Q [batch, q_heads, q_len, D], K [batch, kv_heads, kv_len, D], S [batch, q_heads, q_len,
// kv_len]. Query i sits at position kv_len − q_len + i. GQA: query head h reads kv head
// h / (q_heads / kv_heads). D and ELEM are substituted by the template step.

struct Params {
    batch: u32, q_heads: u32, kv_heads: u32, q_len: u32,
    kv_len: u32, causal: u32, window: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<ELEM>;
@group(0) @binding(1) var<storage, read> k: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> s: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const D: u32 = D_u;
const MASKED: f32 = -3.0e38;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let i = gid.y;
    let bh = gid.z;
    if (i >= p.q_len || j >= p.kv_len || bh >= p.batch * p.q_heads) {
        return;
    }
    let b = bh / p.q_heads;
    let h = bh % p.q_heads;
    let hk = h / (p.q_heads / p.kv_heads);
    let pos = p.kv_len - p.q_len + i;
    var visible = true;
    if (p.causal != 0u) {
        visible = j <= pos && (p.window == 0u || pos - j < p.window);
    }
    var acc: f32 = MASKED;
    if (visible) {
        let qb = (bh * p.q_len + i) * D;
        let kb = ((b * p.kv_heads + hk) * p.kv_len + j) * D;
        var dot: f32 = 0.0;
        for (var c: u32 = 0u; c < D; c = c + 1u) {
            dot = dot + f32(q[qb + c]) * f32(k[kb + c]);
        }
        acc = dot * p.scale;
    }
    s[(bh * p.q_len + i) * p.kv_len + j] = acc;
}
