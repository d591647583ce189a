// Gated delta rule (Gated DeltaNet), recurrent form: one invocation per column j of the state
// S (dk × dv) of one (sequence, head), the column held in registers in fp32, tokens in order:
//   u_j = β (v_j − α Σ_i k_i S_ij),   S_ij ← α S_ij + k_i u_j,   o_j = Σ_i q_i S_ij
// which is S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ, o_t = S_tᵀ q_t. Columns are
// independent, so a workgroup takes WG columns of one head and stages the keys and queries of
// TB tokens at a time in workgroup memory for all of them. Keys are L2-normalized by the caller.
// Inputs q, k [bh, seq, dk], v [bh, seq, dv], α, β [bh, seq]; output o [bh, seq, dv] followed by
// the final state [bh, dk, dv]. The per-token loops over the column are unrolled by the template
// step (dk a multiple of 4): llvmpipe stops a shader after some tens of thousands of loop trips
// (looped, at dk/4 trips per token, 8192 tokens at dk 128 came back unwritten); unrolled, a token
// costs about two trips and those 8192 tokens pass.
// Should reach: the memory rate of streaming k, q, v once per column block.

struct Params {
    bh: u32,
    seq: u32,
    dv: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> q: array<ELEM>;
@group(0) @binding(1) var<storage, read> k: array<ELEM>;
@group(0) @binding(2) var<storage, read> v: array<ELEM>;
@group(0) @binding(3) var<storage, read> gate: array<ELEM>;
@group(0) @binding(4) var<storage, read> beta: array<ELEM>;
@group(0) @binding(5) var<storage, read_write> out: array<ELEM>;
@group(0) @binding(6) var<uniform> p: Params;

const DK: u32 = DK_u;
const DK4: u32 = DK_u / 4u;
const WG: u32 = 32u;
const TB: u32 = 8u;

var<workgroup> ks: array<vec4<f32>, TB * DK4>;
var<workgroup> qs: array<vec4<f32>, TB * DK4>;
var<workgroup> gb: array<vec2<f32>, TB>;

fn load4(src: u32, which: u32) -> vec4<f32> {
    if which == 0u {
        return vec4<f32>(f32(k[src]), f32(k[src + 1u]), f32(k[src + 2u]), f32(k[src + 3u]));
    }
    return vec4<f32>(f32(q[src]), f32(q[src + 1u]), f32(q[src + 2u]), f32(q[src + 3u]));
}

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let head = wg.y;
    let j = wg.x * WG + lid;
    let live = j < p.dv;
    let first = head * p.seq;
    var s: array<vec4<f32>, DK4>;
    for (var t0 = 0u; t0 < p.seq; t0 += TB) {
        let n = min(TB, p.seq - t0);
        workgroupBarrier();
        for (var e = lid; e < n * DK4; e += WG) {
            let src = (first + t0) * DK + e * 4u;
            ks[e] = load4(src, 0u);
            qs[e] = load4(src, 1u);
        }
        if lid < n {
            gb[lid] = vec2<f32>(f32(gate[first + t0 + lid]), f32(beta[first + t0 + lid]));
        }
        workgroupBarrier();
        if live {
            for (var t = 0u; t < n; t++) {
                let row = t * DK4;
                // Unrolled by the template step over the dk/4 vec4s of the column.
                let acc = KS_SUM;
                let a = gb[t].x;
                let tok = first + t0 + t;
                let u = gb[t].y * (f32(v[tok * p.dv + j]) - a * (acc.x + acc.y + acc.z + acc.w));
                var o = vec4<f32>(0.0);
UPDATE_AND_READ
                out[tok * p.dv + j] = ELEM(o.x + o.y + o.z + o.w);
            }
        }
    }
    if live {
        let base = p.bh * p.seq * p.dv + head * DK * p.dv + j;
        for (var i = 0u; i < DK4; i++) {
            let c = s[i];
            out[base + (4u * i) * p.dv] = ELEM(c.x);
            out[base + (4u * i + 1u) * p.dv] = ELEM(c.y);
            out[base + (4u * i + 2u) * p.dv] = ELEM(c.z);
            out[base + (4u * i + 3u) * p.dv] = ELEM(c.w);
        }
    }
}
