// Causal depthwise convolution then SiLU, one invocation per output element (token, channel):
//   y[t, c] = silu(Σⱼ w[c, j] · x[t − (K−1) + j, c] + bias[c])
// over `channels` channels starting at column `in_offset` of the input projection's rows
// (`in_row` wide), sequences of `seq` tokens: a tap before its sequence's start reads zero.
// The weight buffer holds the taps [channels, K], then the bias where `has_bias` is 1. Reads K
// inputs (cached across neighbouring tokens), writes one: bound by memory bandwidth. ELEM is
// substituted by the template step.

struct Params {
    tokens: u32,
    seq: u32,
    channels: u32,
    taps: u32,
    in_row: u32,
    in_offset: u32,
    has_bias: u32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<ELEM>;
@group(0) @binding(1) var<storage, read> w: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> y: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let e = gid.y * n.x * 256u + gid.x;
    if (e >= p.tokens * p.channels) {
        return;
    }
    let tok = e / p.channels;
    let c = e % p.channels;
    let i = tok % p.seq;
    var acc = 0.0;
    if (p.has_bias == 1u) {
        acc = f32(w[p.channels * p.taps + c]);
    }
    for (var j = 0u; j < p.taps; j = j + 1u) {
        // Tap j reads token i − (taps − 1) + j of the same sequence.
        if (i + j + 1u >= p.taps) {
            let src = tok + j + 1u - p.taps;
            acc = fma(f32(w[c * p.taps + j]), f32(x[src * p.in_row + p.in_offset + c]), acc);
        }
    }
    y[e] = ELEM(acc / (1.0 + exp(-acc)));
}
