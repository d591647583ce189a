// SwiGLU: y = silu(gate) ⊙ up, one invocation per output element. The input is the gate+up
// projection's output, [rows, 2·cols]: the gate in the first cols columns of a row, up in the
// next cols. Reads two elements, writes one: bound by memory bandwidth. ELEM is substituted by the
// template step.

struct Params { rows: u32, cols: u32, }

@group(0) @binding(0) var<storage, read> gu: array<ELEM>;
@group(0) @binding(1) var<storage, read_write> y: array<ELEM>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let e = gid.y * n.x * 256u + gid.x;
    if (e >= p.rows * p.cols) {
        return;
    }
    let r = e / p.cols;
    let c = e % p.cols;
    let g = f32(gu[r * 2u * p.cols + c]);
    let u = f32(gu[r * 2u * p.cols + p.cols + c]);
    y[e] = ELEM(g / (1.0 + exp(-g)) * u);
}
