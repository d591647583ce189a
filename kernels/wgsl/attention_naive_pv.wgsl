// Naive attention, pass 3 of 3: O = P·V from the materialized probabilities, one invocation per
// output element.
//
// Layout: P [batch, q_heads, q_len, kv_len] (f32), V [batch, kv_heads, kv_len, DV],
// O [batch, q_heads, q_len, DV]. DV and ELEM are substituted by the template step.

struct Params {
    batch: u32, q_heads: u32, kv_heads: u32, q_len: u32,
    kv_len: u32, causal: u32, window: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read> v: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> o: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

const DV: u32 = DV_u;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    let i = gid.y;
    let bh = gid.z;
    if (c >= DV || i >= p.q_len || bh >= p.batch * p.q_heads) {
        return;
    }
    let b = bh / p.q_heads;
    let h = bh % p.q_heads;
    let hk = h / (p.q_heads / p.kv_heads);
    let srow = (bh * p.q_len + i) * p.kv_len;
    let vb = (b * p.kv_heads + hk) * p.kv_len;
    var acc: f32 = 0.0;
    for (var j: u32 = 0u; j < p.kv_len; j = j + 1u) {
        acc = acc + s[srow + j] * f32(v[(vb + j) * DV + c]);
    }
    o[(bh * p.q_len + i) * DV + c] = ELEM(acc);
}
