// Register-blocked 2D-tiled matmul: a workgroup computes a BM×BN block of C, each invocation a
// TM×TN micro-tile held in registers. Per K step the workgroup stages A (BM×BK, stored
// transposed) and B (BK×BN) in workgroup memory; each invocation then reads TM values of A and TN
// of B as vec4s and does TM·TN FMAs with them — far more arithmetic per load than the tiled
// kernel. The fast WGSL variant: expect well over 5× the naive kernel.
//
// Row-major, C[z] = A[z] · B[z]; any m, n, k (loads are bounds-checked, edges zero-padded).
// BM, BN, BK, TM, TN and ELEM are substituted by the template step (TM and TN multiples of 4);
// accumulation is f32.

struct Dims { m: u32, n: u32, k: u32, batch: u32 }

@group(0) @binding(0) var<storage, read> a: array<ELEM>;
@group(0) @binding(1) var<storage, read> b: array<ELEM>;
@group(0) @binding(2) var<storage, read_write> c: array<ELEM>;
@group(0) @binding(3) var<uniform> dims: Dims;

const BM: u32 = BM_u;
const BN: u32 = BN_u;
const BK: u32 = BK_u;
const TM: u32 = TM_u;
const TN: u32 = TN_u;
const TN4: u32 = TN_u / 4u;
const THREADS_X: u32 = BN / TN;
const THREADS: u32 = (BM / TM) * (BN / TN);

// A stored transposed (k-major) so that TM consecutive rows are one vec4 read per 4 rows.
var<workgroup> a_tile: array<vec4<f32>, A_VEC4S>;
var<workgroup> b_tile: array<vec4<f32>, B_VEC4S>;

@compute @workgroup_size(THREADS_LIT, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let z = wg.z;
    let row0 = wg.y * BM;
    let col0 = wg.x * BN;
    let ty = tid / THREADS_X;
    let tx = tid % THREADS_X;
    let a_base = z * dims.m * dims.k;
    let b_base = z * dims.k * dims.n;

    // TM rows of TN/4 vec4 accumulators.
    var acc: array<array<vec4<f32>, TN4>, TM>;
    for (var i: u32 = 0u; i < TM; i = i + 1u) {
        for (var j: u32 = 0u; j < TN4; j = j + 1u) {
            acc[i][j] = vec4<f32>(0.0);
        }
    }

    let steps = (dims.k + BK - 1u) / BK;
    for (var s: u32 = 0u; s < steps; s = s + 1u) {
        let k0 = s * BK;
        // Stage A: BM×BK scalars, as BK rows of BM/4 vec4s (transposed).
        for (var v: u32 = tid; v < BK * (BM / 4u); v = v + THREADS) {
            let kk = v / (BM / 4u);
            let r4 = (v % (BM / 4u)) * 4u;
            let gk = k0 + kk;
            let gr = row0 + r4;
            var q = vec4<f32>(0.0);
            if (gk < dims.k) {
                let base = a_base + gr * dims.k + gk;
                if (gr + 3u < dims.m) {
                    q = vec4<f32>(f32(a[base]), f32(a[base + dims.k]), f32(a[base + 2u * dims.k]), f32(a[base + 3u * dims.k]));
                } else {
                    if (gr < dims.m) { q.x = f32(a[base]); }
                    if (gr + 1u < dims.m) { q.y = f32(a[base + dims.k]); }
                    if (gr + 2u < dims.m) { q.z = f32(a[base + 2u * dims.k]); }
                }
            }
            a_tile[v] = q;
        }
        // Stage B: BK rows of BN/4 vec4s.
        for (var v: u32 = tid; v < BK * (BN / 4u); v = v + THREADS) {
            let kk = v / (BN / 4u);
            let c4 = (v % (BN / 4u)) * 4u;
            let gk = k0 + kk;
            let gc = col0 + c4;
            var q = vec4<f32>(0.0);
            if (gk < dims.k) {
                let base = b_base + gk * dims.n + gc;
                if (gc + 3u < dims.n) {
                    q = vec4<f32>(f32(b[base]), f32(b[base + 1u]), f32(b[base + 2u]), f32(b[base + 3u]));
                } else {
                    if (gc < dims.n) { q.x = f32(b[base]); }
                    if (gc + 1u < dims.n) { q.y = f32(b[base + 1u]); }
                    if (gc + 2u < dims.n) { q.z = f32(b[base + 2u]); }
                }
            }
            b_tile[v] = q;
        }
        workgroupBarrier();
        for (var kk: u32 = 0u; kk < BK; kk = kk + 1u) {
            var b_reg: array<vec4<f32>, TN4>;
            for (var j: u32 = 0u; j < TN4; j = j + 1u) {
                b_reg[j] = b_tile[kk * (BN / 4u) + tx * TN4 + j];
            }
            for (var i4: u32 = 0u; i4 < TM / 4u; i4 = i4 + 1u) {
                let a4 = a_tile[kk * (BM / 4u) + ty * (TM / 4u) + i4];
                for (var j: u32 = 0u; j < TN4; j = j + 1u) {
                    acc[i4 * 4u][j] = fma(vec4<f32>(a4.x), b_reg[j], acc[i4 * 4u][j]);
                    acc[i4 * 4u + 1u][j] = fma(vec4<f32>(a4.y), b_reg[j], acc[i4 * 4u + 1u][j]);
                    acc[i4 * 4u + 2u][j] = fma(vec4<f32>(a4.z), b_reg[j], acc[i4 * 4u + 2u][j]);
                    acc[i4 * 4u + 3u][j] = fma(vec4<f32>(a4.w), b_reg[j], acc[i4 * 4u + 3u][j]);
                }
            }
        }
        workgroupBarrier();
    }

    let c_base = z * dims.m * dims.n;
    for (var i: u32 = 0u; i < TM; i = i + 1u) {
        let r = row0 + ty * TM + i;
        if (r < dims.m) {
            for (var j: u32 = 0u; j < TN; j = j + 1u) {
                let col = col0 + tx * TN + j;
                if (col < dims.n) {
                    c[c_base + r * dims.n + col] = ELEM(acc[i][j / 4u][j % 4u]);
                }
            }
        }
    }
}
