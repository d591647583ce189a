// GeGLU inside a transformer block (Gemma): y = gelu(gate) ⊙ up with GELU's tanh approximation
// (Hendrycks and Gimpel, "Gaussian Error Linear Units (GELUs)"), as Gemma's
// gelu_pytorch_tanh. Layout as the SwiGLU kernel: the gate+up projection's output [rows, 2·cols],
// gate in the first cols columns of a row, up in the next. One invocation per output element;
// bound by memory bandwidth. ELEM is substituted by the template step.

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
    // sqrt(2/π) · (g + 0.044715 g³); tanh saturates, so clamp its argument against overflow.
    let z = clamp(0.7978845608028654 * (g + 0.044715 * g * g * g), -20.0, 20.0);
    y[e] = ELEM(0.5 * g * (1.0 + tanh(z)) * u);
}
