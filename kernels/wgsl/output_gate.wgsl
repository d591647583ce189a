// The mixer's output gate, y ⊙ silu(z), one invocation per output element, written token-major
// [tokens, width]. y is head-major [sequences, heads, seq, width / heads] when `head_major` is 1
// (the Gated DeltaNet's normed scan output) or token-major (Mamba-2's scan output); z is read at
// column `gate_offset` of the input projection's rows (`proj_row` wide). Reads two elements,
// writes one: bound by memory bandwidth. ELEM is substituted by the template step.

struct Params {
    tokens: u32,
    width: u32,
    seq: u32,
    heads: u32,
    head_major: u32,
    proj_row: u32,
    gate_offset: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> y: array<ELEM>;
@group(0) @binding(1) var<storage, read> proj: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> out: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let e = gid.y * n.x * 256u + gid.x;
    if (e >= p.tokens * p.width) {
        return;
    }
    let tok = e / p.width;
    let c = e % p.width;
    var src = e;
    if (p.head_major == 1u) {
        let d = p.width / p.heads;
        src = ((tok / p.seq * p.heads + c / d) * p.seq + tok % p.seq) * d + c % d;
    }
    let g = f32(proj[tok * p.proj_row + p.gate_offset + c]);
    out[e] = ELEM(f32(y[src]) * g / (1.0 + exp(-g)));
}
