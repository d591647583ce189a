// Shared-memory tiled matmul: each workgroup stages a TILE×TILE block of A and of B in workgroup
// memory, so every global element is loaded once per tile instead of once per output. Cuts global
// traffic by TILE×; expect several times the naive kernel, still bound by workgroup-memory loads
// (one output per invocation).
//
// Row-major, C[z] = A[z] · B[z]; any m, n, k (edges are zero-padded in the tiles). TILE and ELEM
// are substituted by the template step; accumulation is f32.

struct Dims { m: u32, n: u32, k: u32, batch: u32 }

@group(0) @binding(0) var<storage, read> a: array<ELEM>;
@group(0) @binding(1) var<storage, read> b: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> c: array<ELEM>;
@group(0) @binding(3) var<uniform> dims: Dims;

const T: u32 = TILEu;

var<workgroup> a_tile: array<f32, TILE_SQ>;
var<workgroup> b_tile: array<f32, TILE_SQ>;

@compute @workgroup_size(TILE, TILE, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row = wg.y * T + lid.y;
    let col = wg.x * T + lid.x;
    let z = wg.z;
    let a_base = z * dims.m * dims.k;
    let b_base = z * dims.k * dims.n;
    var acc: f32 = 0.0;
    let steps = (dims.k + T - 1u) / T;
    for (var s: u32 = 0u; s < steps; s = s + 1u) {
        let ak = s * T + lid.x;
        var av: f32 = 0.0;
        if (row < dims.m && ak < dims.k) {
            av = f32(a[a_base + row * dims.k + ak]);
        }
        a_tile[lid.y * T + lid.x] = av;
        let bk = s * T + lid.y;
        var bv: f32 = 0.0;
        if (bk < dims.k && col < dims.n) {
            bv = f32(b[b_base + bk * dims.n + col]);
        }
        b_tile[lid.y * T + lid.x] = bv;
        workgroupBarrier();
        for (var i: u32 = 0u; i < T; i = i + 1u) {
            acc = acc + a_tile[lid.y * T + i] * b_tile[i * T + lid.x];
        }
        workgroupBarrier();
    }
    if (row < dims.m && col < dims.n) {
        c[z * dims.m * dims.n + row * dims.n + col] = ELEM(acc);
    }
}
