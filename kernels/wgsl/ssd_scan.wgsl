// Mamba-2's scan (the state space duality's recurrent form), one invocation per row p of one
// (sequence, head)'s state S (head_dim × N), held in fp32 registers as N/4 vec4s, tokens in order:
//   Δ = softplus(dt + dt_bias),  S_p ← exp(Δ·A) · S_p + Δ · x_p · B,  y_p = S_p · C + D · x_p
// with A = −exp(A_log), B and C the head's group's. x, B and C come from the convolution's rows
// [x (heads · head_dim) | B (groups · N) | C (groups · N)], dt from column dt_offset + head of
// the projection's rows; the per-head parameters are [A_log | dt_bias | D]; y is written
// token-major [tokens, heads · head_dim]. A workgroup takes WG rows of one head and stages B, C,
// Δ and the decay of TB tokens at a time in workgroup memory. The per-token work over the N/4
// vec4s is written out by the template step (llvmpipe stops a shader after some tens of
// thousands of loop trips). ELEM is substituted by the template step.

struct Params {
    heads: u32,
    seq: u32,
    head_dim: u32,
    groups: u32,
    conv_row: u32,
    proj_row: u32,
    dt_offset: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> conv: array<ELEM>;
@group(0) @binding(1) var<storage, read> proj: array<ELEM>;
@group(0) @binding(2) var<storage, read> hp: array<ELEM>;
@group(0) @binding(3) var<storage, read_write> y: array<ELEM>;
@group(0) @binding(4) var<uniform> p: Params;

const N: u32 = N_u;
const N4: u32 = N_u / 4u;
const WG: u32 = 32u;
const TB: u32 = 8u;

var<workgroup> bs: array<vec4<f32>, TB * N4>;
var<workgroup> cs: array<vec4<f32>, TB * N4>;
// Δ and exp(Δ·A) per staged token.
var<workgroup> dd: array<vec2<f32>, TB>;

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let z = wg.y / p.heads;
    let h = wg.y % p.heads;
    let pr = wg.x * WG + lid;
    let live = pr < p.head_dim;
    let inner = p.heads * p.head_dim;
    let group = h / (p.heads / p.groups);
    let b_at = inner + group * N;
    let c_at = inner + p.groups * N + group * N;
    let a = -exp(f32(hp[h]));
    let dt_bias = f32(hp[p.heads + h]);
    let d = f32(hp[2u * p.heads + h]);
    // Function-scope variables start at zero: so does the state.
    var s: array<vec4<f32>, N4>;
    for (var t0 = 0u; t0 < p.seq; t0 += TB) {
        let n = min(TB, p.seq - t0);
        workgroupBarrier();
        for (var e = lid; e < n * N4; e += WG) {
            let tok = z * p.seq + t0 + e / N4;
            let src = tok * p.conv_row + 4u * (e % N4);
            bs[e] = vec4<f32>(f32(conv[src + b_at]), f32(conv[src + b_at + 1u]),
                              f32(conv[src + b_at + 2u]), f32(conv[src + b_at + 3u]));
            cs[e] = vec4<f32>(f32(conv[src + c_at]), f32(conv[src + c_at + 1u]),
                              f32(conv[src + c_at + 2u]), f32(conv[src + c_at + 3u]));
        }
        if lid < n {
            let x = f32(proj[(z * p.seq + t0 + lid) * p.proj_row + p.dt_offset + h]) + dt_bias;
            let dt = select(log(1.0 + exp(x)), x, x > 20.0);
            dd[lid] = vec2<f32>(dt, exp(dt * a));
        }
        workgroupBarrier();
        if live {
            for (var t = 0u; t < n; t++) {
                let tok = z * p.seq + t0 + t;
                let x = f32(conv[tok * p.conv_row + h * p.head_dim + pr]);
                let decay = dd[t].y;
                let dx = dd[t].x * x;
                let row = t * N4;
                var acc = vec4<f32>(0.0);
SSD_STEP
                y[tok * inner + h * p.head_dim + pr] = ELEM(acc.x + acc.y + acc.z + acc.w + d * x);
            }
        }
    }
}
