// The keys of a multi-head latent attention prefill (DeepSeek-V2 and V3): each head's key is its
// rope-less part, where the key/value up-projection wrote it (`src_head` columns apart, rows
// `src_row` apart, its value after it), followed by the one rotary key all heads share (a
// [rows, rope] buffer). Written contiguously, [rows, heads, nope + rope], for attention. One
// invocation per key element: a copy, each element read once and written once, bound by memory
// bandwidth. ELEM is substituted by the template step.

struct Params { rows: u32, heads: u32, nope: u32, rope: u32, src_row: u32, src_head: u32, }

@group(0) @binding(0) var<storage, read> kv: array<ELEM>;
@group(0) @binding(1) var<storage, read> k_rope: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> k: array<ELEM>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>) {
    let e = gid.y * n.x * 256u + gid.x;
    let d = p.nope + p.rope;
    if (e >= p.rows * p.heads * d) {
        return;
    }
    let c = e % d;
    let head = (e / d) % p.heads;
    let row = e / (d * p.heads);
    if (c < p.nope) {
        k[e] = kv[row * p.src_row + head * p.src_head + c];
    } else {
        k[e] = k_rope[row * p.rope + c - p.nope];
    }
}
