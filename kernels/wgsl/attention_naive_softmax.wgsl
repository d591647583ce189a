// Naive attention, pass 2 of 3: row softmax of the score matrix in place, one workgroup per row
// (max, then sum of exponentials, then normalize), reading and writing the full matrix again.

struct Params {
    batch: u32, q_heads: u32, kv_heads: u32, q_len: u32,
    kv_len: u32, causal: u32, window: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read_write> s: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;

const THREADS: u32 = 64u;
const MASKED: f32 = -3.0e38;
var<workgroup> scratch: array<f32, 64>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let row = wg.x + wg.y * 65535u;
    let rows = p.batch * p.q_heads * p.q_len;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if (row >= rows) {
        return;
    }
    let base = row * p.kv_len;
    var m: f32 = MASKED;
    for (var j: u32 = t; j < p.kv_len; j = j + THREADS) {
        m = max(m, s[base + j]);
    }
    scratch[t] = m;
    workgroupBarrier();
    for (var stride: u32 = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (t < stride) {
            scratch[t] = max(scratch[t], scratch[t + stride]);
        }
        workgroupBarrier();
    }
    let row_max = scratch[0];
    workgroupBarrier();
    var sum: f32 = 0.0;
    for (var j: u32 = t; j < p.kv_len; j = j + THREADS) {
        let v = s[base + j];
        var e: f32 = 0.0;
        if (v > MASKED) {
            e = exp(v - row_max);
        }
        s[base + j] = e;
        sum = sum + e;
    }
    scratch[t] = sum;
    workgroupBarrier();
    for (var stride: u32 = THREADS / 2u; stride > 0u; stride = stride / 2u) {
        if (t < stride) {
            scratch[t] = scratch[t] + scratch[t + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / scratch[0];
    for (var j: u32 = t; j < p.kv_len; j = j + THREADS) {
        s[base + j] = s[base + j] * inv;
    }
}
