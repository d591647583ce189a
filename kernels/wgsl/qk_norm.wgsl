// QK-norm inside a transformer block (Qwen3, Gemma 3): an RMSNorm over each query head and each
// key head of the QKV projection's output, y = x / sqrt(mean(x²) + eps) · w, with one weight of
// head_dim for the query heads and one for the key heads. One workgroup of 64 invocations per
// (token, head); the heads are read where the projection wrote them (rows `in_row` apart, the
// value heads skipped) and written contiguously, [tokens, (q_heads + kv_heads) · head_dim],
// ready for rotary. The same bytes as the RMSNorm kernel over those rows: bound by memory
// bandwidth. ELEM is substituted by the template step.

struct Params { rows: u32, head_dim: u32, heads: u32, q_heads: u32, in_row: u32, eps: f32, }

@group(0) @binding(0) var<storage, read> x: array<ELEM>;
@group(0) @binding(1) var<storage, read> w: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> y: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

const THREADS: u32 = 64u;
var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row = wg.y * 65535u + wg.x;
    if (row >= p.rows) {
        return;
    }
    let token = row / p.heads;
    let head = row % p.heads;
    let src = token * p.in_row + head * p.head_dim;
    let dst = row * p.head_dim;
    // Query heads take the first weight, key heads the second.
    let wbase = select(p.head_dim, 0u, head < p.q_heads);
    var sum: f32 = 0.0;
    for (var c: u32 = t; c < p.head_dim; c = c + THREADS) {
        let v = f32(x[src + c]);
        sum = fma(v, v, sum);
    }
    partial[t] = sum;
    workgroupBarrier();
    for (var s: u32 = THREADS / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            partial[t] = partial[t] + partial[t + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(partial[0] / f32(p.head_dim) + p.eps);
    for (var c: u32 = t; c < p.head_dim; c = c + THREADS) {
        y[dst + c] = ELEM(f32(x[src + c]) * inv * f32(w[wbase + c]));
    }
}
