// Rotary positions of a multi-head latent attention layer (DeepSeek-V2 and V3) in a prefill: the
// rotary part of every query head is turned in place where the query projection wrote it (each
// head's rope columns follow its rope-less ones), and the one rotary key the heads share is read
// from the key/value down-projection's output (after the latent) and written, turned, to its own
// [rows, rope] buffer. DeepSeek's pairs: consecutive elements (2i, 2i + 1) turn by the angle
// pos · theta^(−2i/rope), as its reference code turns the vector as complex numbers. One
// invocation per pair, heads + 1 rotary heads per row; rows are tokens, pos = row mod seq_len.
// The angle is reduced to [−π, π] before sin and cos, which WGSL only promises to be accurate
// there. ELEM is substituted by the template step.

struct Params {
    rows: u32, heads: u32, rope: u32, seq_len: u32,
    q_row: u32, q_head: u32, q_off: u32, kv_row: u32,
    kv_off: u32, theta: f32,
}

@group(0) @binding(0) var<storage, read_write> q: array<ELEM>;
@group(0) @binding(1) var<storage, read> kv: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> k: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

const TWO_PI: f32 = 6.283185307179586;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let e = gid.y * n.x * 256u + gid.x;
    let half = p.rope / 2u;
    let per_row = (p.heads + 1u) * half;
    if (e >= p.rows * per_row) {
        return;
    }
    let row = e / per_row;
    let head = (e % per_row) / half;
    let i = e % half;
    let pos = f32(row % p.seq_len);
    let inv_freq = pow(p.theta, -2.0 * f32(i) / f32(p.rope));
    var angle = pos * inv_freq;
    angle = angle - TWO_PI * round(angle / TWO_PI);
    let cs = cos(angle);
    let sn = sin(angle);
    if (head < p.heads) {
        let at = row * p.q_row + head * p.q_head + p.q_off + 2u * i;
        let x0 = f32(q[at]);
        let x1 = f32(q[at + 1u]);
        q[at] = ELEM(x0 * cs - x1 * sn);
        q[at + 1u] = ELEM(x1 * cs + x0 * sn);
    } else {
        let at = row * p.kv_row + p.kv_off + 2u * i;
        let x0 = f32(kv[at]);
        let x1 = f32(kv[at + 1u]);
        let out = row * p.rope + 2u * i;
        k[out] = ELEM(x0 * cs - x1 * sn);
        k[out + 1u] = ELEM(x1 * cs + x0 * sn);
    }
}
