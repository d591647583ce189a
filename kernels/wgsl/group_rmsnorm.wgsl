// RMSNorm over groups of a row, each group with its own slice of the weight (Mamba-2's gated
// norm: the rows are [tokens · groups, cols], group r % groups of its token, weight
// [groups · cols]). One workgroup of 64 invocations per group row, as rmsnorm.wgsl: the sum of
// squares in f32 reduced in workgroup memory, then every invocation scales its slice. ELEM is
// substituted by the template step.

struct Params { rows: u32, cols: u32, eps: f32, groups: u32, }

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
    let base = row * p.cols;
    let wbase = (row % p.groups) * p.cols;
    var sum: f32 = 0.0;
    for (var c: u32 = t; c < p.cols; c = c + THREADS) {
        let v = f32(x[base + c]);
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
    let inv = inverseSqrt(partial[0] / f32(p.cols) + p.eps);
    for (var c: u32 = t; c < p.cols; c = c + THREADS) {
        y[base + c] = ELEM(f32(x[base + c]) * inv * f32(w[wbase + c]));
    }
}
