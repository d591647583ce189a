// Rotary position embedding (the rotate-half convention of Llama and most Hugging Face models):
// in each head of D columns, the pair (i, i + D/2) turns by the angle pos · theta^(−2i/D). One
// invocation per pair. Rows are tokens, pos = row mod seq_len; the first `cols` columns of each
// input row (of in_row elements) are rotated into the output row (of out_row elements), so a
// block can rotate the Q and K heads of its QKV projection into their own buffer and leave V
// where it is. The angle is reduced to [−π, π] before sin and cos, which WGSL only promises to
// be accurate there. ELEM is substituted by the template step.

struct Params {
    rows: u32, cols: u32, head_dim: u32, seq_len: u32,
    in_row: u32, out_row: u32, theta: f32,
}

@group(0) @binding(0) var<storage, read> x: array<ELEM>;
@group(0) @binding(1) var<storage, read_write> y: array<ELEM>;
@group(0) @binding(2) var<uniform> p: Params;

const TWO_PI: f32 = 6.283185307179586;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let e = gid.y * n.x * 256u + gid.x;
    let pairs_per_row = p.cols / 2u;
    if (e >= p.rows * pairs_per_row) {
        return;
    }
    let row = e / pairs_per_row;
    let q = e % pairs_per_row;
    let hd2 = p.head_dim / 2u;
    let c0 = (q / hd2) * p.head_dim + q % hd2;
    let c1 = c0 + hd2;
    let pos = f32(row % p.seq_len);
    let inv_freq = pow(p.theta, -2.0 * f32(q % hd2) / f32(p.head_dim));
    var angle = pos * inv_freq;
    angle = angle - TWO_PI * round(angle / TWO_PI);
    let cs = cos(angle);
    let sn = sin(angle);
    let x0 = f32(x[row * p.in_row + c0]);
    let x1 = f32(x[row * p.in_row + c1]);
    y[row * p.out_row + c0] = ELEM(x0 * cs - x1 * sn);
    y[row * p.out_row + c1] = ELEM(x1 * cs + x0 * sn);
}
