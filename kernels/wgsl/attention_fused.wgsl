// Fused attention forward with an online softmax (FlashAttention-style): a workgroup owns BR
// query rows of one (batch, head), streams K and V through workgroup memory BC keys at a time,
// and keeps each row's running max, running sum and output accumulator in registers. Scores never
// leave the workgroup, so memory traffic is Q, K, V and O once each (K/V once per row block):
// expect it to beat the naive three-pass kernel by the score matrix's round trips, most at long
// sequences.
//
// Layout: any strided view. Element (batch b, head h, row i, column c) of Q sits at
// b·q_bs + h·q_hs + i·q_rs + q_off + c, and likewise K, V and O: the benchmark passes the naive
// kernels' head-major [batch, heads, len, D] layout, a transformer block passes token-major views
// into its QKV projection output and writes O token-major for the output projection, as
// FlashAttention reads and writes [batch, len, heads, D]. Causal masking and sliding windows skip whole key blocks no row of
// the workgroup can see. Rows, tiles and accumulators are vec4s (D and DV multiples of 4): four
// times fewer loop trips, which also keeps lavapipe under llvmpipe's limit of 65535 loop
// iterations per invocation (all loops together) up to ~1k keys at D = 128.
// D, DV, BR, BC and ELEM are substituted by the template step.

struct Params {
    batch: u32, q_heads: u32, kv_heads: u32, q_len: u32,
    kv_len: u32, causal: u32, window: u32, scale: f32,
    q_bs: u32, q_hs: u32, q_rs: u32, q_off: u32,
    k_bs: u32, k_hs: u32, k_rs: u32, k_off: u32,
    v_bs: u32, v_hs: u32, v_rs: u32, v_off: u32,
    o_bs: u32, o_hs: u32, o_rs: u32, o_off: u32,
}

@group(0) @binding(0) var<storage, read> q: array<ELEM>;
@group(0) @binding(1) var<storage, read> k: array<ELEM>;
@group(0) @binding(2) var<storage, read> v: array<ELEM>;
@group(0) @binding(3) var<storage, read_write> o: array<ELEM>;
@group(0) @binding(4) var<uniform> p: Params;

const D: u32 = D_u;
const DV: u32 = DV_u;
const D4: u32 = D_u / 4u;
const DV4: u32 = DV_u / 4u;
const BR: u32 = BR_u;
const BC: u32 = BC_u;

var<workgroup> k_tile: array<vec4<f32>, K_TILE4>;
var<workgroup> v_tile: array<vec4<f32>, V_TILE4>;

@compute @workgroup_size(BR_LIT, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let bh = wg.y;
    let b = bh / p.q_heads;
    let h = bh % p.q_heads;
    let hk = h / (p.q_heads / p.kv_heads);
    let i = wg.x * BR + t;
    let row_ok = i < p.q_len;
    let offset = p.kv_len - p.q_len;
    let pos = offset + i;

    // Keys this row sees: [lo, hi).
    var lo: u32 = 0u;
    var hi: u32 = p.kv_len;
    if (p.causal != 0u) {
        hi = pos + 1u;
        if (p.window != 0u && pos + 1u > p.window) {
            lo = pos + 1u - p.window;
        }
    }
    // Keys any row of this workgroup sees (uniform across the workgroup).
    let first_pos = offset + wg.x * BR;
    let last_pos = min(first_pos + BR - 1u, p.kv_len - 1u);
    var wg_lo: u32 = 0u;
    var wg_hi: u32 = p.kv_len;
    if (p.causal != 0u) {
        wg_hi = last_pos + 1u;
        if (p.window != 0u && first_pos + 1u > p.window) {
            wg_lo = first_pos + 1u - p.window;
        }
    }

    var q_row: array<vec4<f32>, D4>;
    var acc: array<vec4<f32>, DV4>;
    if (row_ok) {
        let qb = b * p.q_bs + h * p.q_hs + i * p.q_rs + p.q_off;
        for (var c: u32 = 0u; c < D4; c = c + 1u) {
            let x = qb + 4u * c;
            q_row[c] = vec4<f32>(f32(q[x]), f32(q[x + 1u]), f32(q[x + 2u]), f32(q[x + 3u])) * p.scale;
        }
    }
    for (var c: u32 = 0u; c < DV4; c = c + 1u) {
        acc[c] = vec4<f32>(0.0);
    }
    var m: f32 = -3.0e38;
    var l: f32 = 0.0;

    let k_base = b * p.k_bs + hk * p.k_hs + p.k_off;
    let v_base = b * p.v_bs + hk * p.v_hs + p.v_off;
    let start = (wg_lo / BC) * BC;
    for (var kb: u32 = start; kb < wg_hi; kb = kb + BC) {
        for (var e: u32 = t; e < BC * D4; e = e + BR) {
            let j = kb + e / D4;
            var x = vec4<f32>(0.0);
            if (j < p.kv_len) {
                let g = k_base + j * p.k_rs + 4u * (e % D4);
                x = vec4<f32>(f32(k[g]), f32(k[g + 1u]), f32(k[g + 2u]), f32(k[g + 3u]));
            }
            k_tile[e] = x;
        }
        for (var e: u32 = t; e < BC * DV4; e = e + BR) {
            let j = kb + e / DV4;
            var x = vec4<f32>(0.0);
            if (j < p.kv_len) {
                let g = v_base + j * p.v_rs + 4u * (e % DV4);
                x = vec4<f32>(f32(v[g]), f32(v[g + 1u]), f32(v[g + 2u]), f32(v[g + 3u]));
            }
            v_tile[e] = x;
        }
        workgroupBarrier();
        if (row_ok) {
            var s: array<f32, BC>;
            var block_max: f32 = -3.0e38;
            var any_visible = false;
            for (var jj: u32 = 0u; jj < BC; jj = jj + 1u) {
                let j = kb + jj;
                var score: f32 = -3.0e38;
                if (j >= lo && j < hi) {
                    var dot4 = vec4<f32>(0.0);
                    for (var c: u32 = 0u; c < D4; c = c + 1u) {
                        dot4 = fma(q_row[c], k_tile[jj * D4 + c], dot4);
                    }
                    score = dot4.x + dot4.y + dot4.z + dot4.w;
                    any_visible = true;
                    block_max = max(block_max, score);
                }
                s[jj] = score;
            }
            if (any_visible) {
                let m_new = max(m, block_max);
                let correction = exp(m - m_new);
                l = l * correction;
                for (var c: u32 = 0u; c < DV4; c = c + 1u) {
                    acc[c] = acc[c] * correction;
                }
                for (var jj: u32 = 0u; jj < BC; jj = jj + 1u) {
                    let j = kb + jj;
                    if (j >= lo && j < hi) {
                        let pj = exp(s[jj] - m_new);
                        l = l + pj;
                        for (var c: u32 = 0u; c < DV4; c = c + 1u) {
                            acc[c] = fma(vec4<f32>(pj), v_tile[jj * DV4 + c], acc[c]);
                        }
                    }
                }
                m = m_new;
            }
        }
        workgroupBarrier();
    }
    if (row_ok) {
        let ob = b * p.o_bs + h * p.o_hs + i * p.o_rs + p.o_off;
        let inv = 1.0 / l;
        for (var c: u32 = 0u; c < DV4; c = c + 1u) {
            let r = acc[c] * inv;
            o[ob + 4u * c] = ELEM(r.x);
            o[ob + 4u * c + 1u] = ELEM(r.y);
            o[ob + 4u * c + 2u] = ELEM(r.z);
            o[ob + 4u * c + 3u] = ELEM(r.w);
        }
    }
}
