// Absorbed multi-head latent attention decode (DeepSeek-V2/V3): one query per sequence, many
// query heads sharing one cached latent per token. Keys and values are the same buffer: the
// values are the first DV columns of each D-wide key row (latent, then rotary key), so the
// cache is read as keys and values in one place. A workgroup owns HG query heads of one
// (sequence, kv head) and walks the context TK keys at a time: invocation (head, key) of the
// tile takes one full dot product against the heads' queries held in workgroup memory, then
// every invocation applies the online softmax of the tile's scores to its DV/64 output columns
// of every head. One pass over the context, no split: the correctness-gate form of the CUDA
// kernel (cuda:mla-decode), small enough for lavapipe. Each invocation runs about 1.2k loop
// trips per tile at D = 576, so llvmpipe's 65535 per invocation caps a context near 900 keys.
// Layout: Q [b, hq, D], KV [b, hkv, skv, D], O [b, hq, DV]. D, DV and ELEM are substituted by the
// template step.

struct Params {
    batch: u32, q_heads: u32, kv_heads: u32, q_len: u32,
    kv_len: u32, causal: u32, window: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<ELEM>;
@group(0) @binding(1) var<storage, read> kv: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> o: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

const D: u32 = D_u;
const DV: u32 = DV_u;
const HG: u32 = 4u;
const TK: u32 = 16u;
// Output columns per invocation and head: DV ≤ 512 over 64 invocations.
const CPI: u32 = 8u;
// Below any score: masked keys and the running max before the first key (exp of it is 0).
const LOW: f32 = -3.0e38;

var<workgroup> qs: array<f32, 2304>; // HG × D, D ≤ 576
var<workgroup> sc: array<f32, 64>;   // HG × TK scores of the tile

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let hpk = p.q_heads / p.kv_heads;
    let groups = (hpk + HG - 1u) / HG;
    let unit = wg.y * 65535u + wg.x;
    if (unit >= p.batch * p.kv_heads * groups) {
        return;
    }
    let g = unit % groups;
    let bk = unit / groups; // b · kv_heads + kv head
    let b = bk / p.kv_heads;
    let head0 = (bk % p.kv_heads) * hpk + g * HG;
    let heads = min(HG, hpk - g * HG);
    let skv = p.kv_len;

    for (var i: u32 = t; i < HG * D; i = i + 64u) {
        let hh = i / D;
        var x: f32 = 0.0;
        if (hh < heads) {
            x = f32(q[(b * p.q_heads + head0 + hh) * D + i % D]) * p.scale;
        }
        qs[i] = x;
    }
    workgroupBarrier();

    var first: u32 = 0u;
    if (p.causal != 0u && p.window > 0u && skv > p.window) {
        first = skv - p.window;
    }
    var m = array<f32, 4>(LOW, LOW, LOW, LOW);
    var l = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var acc: array<f32, 32>; // HG × CPI, zero-initialized
    let base = bk * skv * D;
    let my_head = t / TK;
    let my_key = t % TK;

    for (var j0: u32 = first; j0 < skv; j0 = j0 + TK) {
        let j = j0 + my_key;
        var s: f32 = LOW;
        if (j < skv) {
            s = 0.0;
            let row = base + j * D;
            for (var c: u32 = 0u; c < D; c = c + 1u) {
                s = fma(qs[my_head * D + c], f32(kv[row + c]), s);
            }
        }
        sc[t] = s;
        workgroupBarrier();
        for (var hh: u32 = 0u; hh < HG; hh = hh + 1u) {
            var tmax: f32 = LOW;
            for (var jj: u32 = 0u; jj < TK; jj = jj + 1u) {
                tmax = max(tmax, sc[hh * TK + jj]);
            }
            let mn = max(m[hh], tmax);
            let corr = exp(m[hh] - mn);
            l[hh] = l[hh] * corr;
            for (var u: u32 = 0u; u < CPI; u = u + 1u) {
                acc[hh * CPI + u] = acc[hh * CPI + u] * corr;
            }
            for (var jj: u32 = 0u; jj < TK && j0 + jj < skv; jj = jj + 1u) {
                let pr = exp(sc[hh * TK + jj] - mn);
                l[hh] = l[hh] + pr;
                let row = base + (j0 + jj) * D;
                for (var u: u32 = 0u; u < CPI; u = u + 1u) {
                    let c = t + 64u * u;
                    if (c < DV) {
                        acc[hh * CPI + u] = fma(pr, f32(kv[row + c]), acc[hh * CPI + u]);
                    }
                }
            }
            m[hh] = mn;
        }
        workgroupBarrier();
    }
    for (var hh: u32 = 0u; hh < heads; hh = hh + 1u) {
        for (var u: u32 = 0u; u < CPI; u = u + 1u) {
            let c = t + 64u * u;
            if (c < DV) {
                o[(b * p.q_heads + head0 + hh) * DV + c] = ELEM(acc[hh * CPI + u] / l[hh]);
            }
        }
    }
}
