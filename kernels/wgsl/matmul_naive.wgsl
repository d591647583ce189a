// Naive matmul: one invocation per output element, reading A's row and B's column straight from
// global memory. The baseline every other variant is measured against; expect a few percent of
// peak (every FMA needs two global loads).
//
// C[z] = A[z] · B[z], row-major, A: m×k, B: k×n, C: m×n, z < batch. `ELEM` is f32 or f16 (a
// template step substitutes it); accumulation is always f32.

struct Dims { m: u32, n: u32, k: u32, batch: u32 }

@group(0) @binding(0) var<storage, read> a: array<ELEM>;
@group(0) @binding(1) var<storage, read> b: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> c: array<ELEM>;
@group(0) @binding(3) var<uniform> dims: Dims;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    let z = gid.z;
    if (row >= dims.m || col >= dims.n || z >= dims.batch) {
        return;
    }
    let a_base = z * dims.m * dims.k + row * dims.k;
    let b_base = z * dims.k * dims.n + col;
    var acc: f32 = 0.0;
    for (var i: u32 = 0u; i < dims.k; i = i + 1u) {
        acc = acc + f32(a[a_base + i]) * f32(b[b_base + i * dims.n]);
    }
    c[z * dims.m * dims.n + row * dims.n + col] = ELEM(acc);
}
