// Gated DeltaNet's inputs to the scan, one workgroup per (token, value head): from the short
// convolution's output [q | k | v] per token it writes, head-major for the scan,
//   q = q_kh / ‖q_kh‖ / √dk,  k = k_kh / ‖k_kh‖,  v = v_h
// (‖·‖ = sqrt(Σ x² + eps); kh = h / (value heads / key heads), the key head h shares), and from
// the projection's b and a columns the head's write strength β = sigmoid(b) and decay
// α = exp(−exp(A_log) · softplus(a + dt_bias)). The per-head parameters are [A_log | dt_bias].
// Two sums of squares reduced in workgroup memory; one read and one write of each element.
// ELEM is substituted by the template step.

struct Params {
    tokens: u32,
    seq: u32,
    key_heads: u32,
    value_heads: u32,
    dk: u32,
    dv: u32,
    conv_row: u32,
    proj_row: u32,
    // Column of b in a projection row (a follows b's value_heads columns).
    b_offset: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> conv: array<ELEM>;
@group(0) @binding(1) var<storage, read> proj: array<ELEM>;
@group(0) @binding(2) var<storage, read> heads: array<ELEM>;
@group(0) @binding(3) var<storage, read_write> q: array<ELEM>;
@group(0) @binding(4) var<storage, read_write> k: array<ELEM>;
@group(0) @binding(5) var<storage, read_write> v: array<ELEM>;
@group(0) @binding(6) var<storage, read_write> alpha: array<ELEM>;
@group(0) @binding(7) var<storage, read_write> beta: array<ELEM>;
@group(0) @binding(8) var<uniform> p: Params;

const THREADS: u32 = 64u;
var<workgroup> partial: array<vec2<f32>, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let item = wg.y * 65535u + wg.x;
    if (item >= p.tokens * p.value_heads) {
        return;
    }
    let tok = item / p.value_heads;
    let h = item % p.value_heads;
    let kh = h / (p.value_heads / p.key_heads);
    let qs = tok * p.conv_row + kh * p.dk;
    let ks = tok * p.conv_row + p.key_heads * p.dk + kh * p.dk;
    var sums = vec2<f32>(0.0);
    for (var c = t; c < p.dk; c = c + THREADS) {
        let a = vec2<f32>(f32(conv[qs + c]), f32(conv[ks + c]));
        sums = fma(a, a, sums);
    }
    partial[t] = sums;
    workgroupBarrier();
    for (var s = THREADS / 2u; s > 0u; s = s / 2u) {
        if (t < s) {
            partial[t] = partial[t] + partial[t + s];
        }
        workgroupBarrier();
    }
    let inv = inverseSqrt(partial[0] + vec2<f32>(p.eps));
    let qscale = inv.x * inverseSqrt(f32(p.dk));
    // Head-major row of this (sequence, head, position).
    let z = tok / p.seq;
    let row = (z * p.value_heads + h) * p.seq + tok % p.seq;
    for (var c = t; c < p.dk; c = c + THREADS) {
        q[row * p.dk + c] = ELEM(f32(conv[qs + c]) * qscale);
        k[row * p.dk + c] = ELEM(f32(conv[ks + c]) * inv.y);
    }
    let vs = tok * p.conv_row + 2u * p.key_heads * p.dk + h * p.dv;
    for (var c = t; c < p.dv; c = c + THREADS) {
        v[row * p.dv + c] = conv[vs + c];
    }
    if (t == 0u) {
        let b = f32(proj[tok * p.proj_row + p.b_offset + h]);
        let a = f32(proj[tok * p.proj_row + p.b_offset + p.value_heads + h]);
        let x = a + f32(heads[p.value_heads + h]);
        // softplus without overflow: exp(x) is inf past ~88, where softplus(x) = x.
        let sp = select(log(1.0 + exp(x)), x, x > 20.0);
        alpha[row] = ELEM(exp(-exp(f32(heads[h])) * sp));
        beta[row] = ELEM(1.0 / (1.0 + exp(-b)));
    }
}
