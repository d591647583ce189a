// Double-buffered, warp-tiled fp32 SIMT GEMM, C = A·B row-major, any m, n, k, batched by
// blockIdx.z. Two block tiles from one template:
//   matmul_fp32_simt     128×128 block, 256 threads (8 warps as 2 rows × 4 columns);
//   matmul_fp32_simt_64  64×64 block, 64 threads (2 warps side by side), for small or skinny
//                        problems where 128×128 blocks leave SMs idle.
// Each warp owns a 64×32 patch of C and each lane an 8×8 micro-tile in registers, split into
// 2×2 sub-tiles of 4×4 (rows lm·4 and 32 + lm·4, columns ln·4 and 16 + ln·4, with lm = lane % 8,
// ln = lane / 8). So in every quarter-warp (the unit a 128-bit shared load is served in) the
// eight lanes read eight consecutive float4s of A — all 32 banks once — and one float4 of B,
// broadcast: no bank conflicts.
// A is stored transposed in shared memory (as[k][row], rows padded by 4 so the transposing
// stores of a warp hit distinct banks), B as it is, both read as float4s. Global loads are
// float4 where the row is 16-byte aligned and the four elements are in bounds, else scalar with
// each element bounded (zeros outside). Shared memory holds two stages: tile t+1 is fetched from
// global memory into registers before the k-loop over tile t and stored into the other stage
// after it, one __syncthreads per tile.
// Grid (ceil(n/BN), ceil(m/BM), batch), block WARPS_M·WARPS_N·32.

#ifndef SIMT_CHECK_ALIGN16
#define SIMT_CHECK_ALIGN16(p)  // a hook: the CPU emulation defines it to check alignment
#endif

namespace simt {

constexpr int BK = 8;        // k per stage
constexpr int WARP_M = 64;   // rows of C per warp
constexpr int WARP_N = 32;   // columns of C per warp
constexpr int PAD = 4;       // extra floats per row of the transposed A tile

__device__ __forceinline__ float4 ld4(const float* p) {
    SIMT_CHECK_ALIGN16(p);
    return *reinterpret_cast<const float4*>(p);
}
__device__ __forceinline__ void st4(float* p, float4 v) {
    SIMT_CHECK_ALIGN16(p);
    *reinterpret_cast<float4*>(p) = v;
}

// Four elements at `p`, columns col..col+3 of a row `cols` wide, zeros where the row is out of
// bounds or past its end: one float4 load when the row is 16-byte aligned and all four are in.
__device__ __forceinline__ float4 load_quad(const float* p, bool row_in, int col, int cols,
                                            bool aligned) {
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (!row_in) return v;
    if (aligned && col + 3 < cols) return ld4(p);
    if (col < cols) v.x = p[0];
    if (col + 1 < cols) v.y = p[1];
    if (col + 2 < cols) v.z = p[2];
    if (col + 3 < cols) v.w = p[3];
    return v;
}

template <int WARPS_M, int WARPS_N>
__device__ __forceinline__ void gemm(const float* __restrict__ a, const float* __restrict__ b,
                                     float* __restrict__ c, int m, int n, int k) {
    constexpr int BM = WARPS_M * WARP_M, BN = WARPS_N * WARP_N;
    constexpr int THREADS = WARPS_M * WARPS_N * 32;
    // float4s per stage each thread moves: A is BM rows × 2 quads, B is BK rows × BN/4 quads.
    constexpr int A_QUADS = BM * BK / 4 / THREADS, B_QUADS = BK * BN / 4 / THREADS;
    static_assert(A_QUADS * THREADS * 4 == BM * BK, "A tile splits evenly over the threads");
    static_assert(B_QUADS * THREADS * 4 == BK * BN, "B tile splits evenly over the threads");

    __shared__ __align__(16) float as[2][BK][BM + PAD];  // transposed: as[stage][kk][row]
    __shared__ __align__(16) float bs[2][BK][BN];

    const int tid = threadIdx.x;
    const size_t z = blockIdx.z;
    a += z * m * k;
    b += z * k * n;
    c += z * m * n;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int warp = tid / 32, lane = tid % 32;
    const int wm = (warp / WARPS_N) * WARP_M, wn = (warp % WARPS_N) * WARP_N;
    const int lm = (lane % 8) * 4, ln = (lane / 8) * 4;
    const bool a_aligned = k % 4 == 0, b_aligned = n % 4 == 0;

    // Tile t's quads: A quad f is row f / 2, k columns (f % 2)·4..+3; B quad f is k row
    // f / (BN/4), columns (f % (BN/4))·4..+3. Each thread's quads keep their place in every
    // tile, so their source pointers are set once and step by one tile (fewer live registers
    // than recomputing 64-bit addresses).
    const float* a_src[A_QUADS];
    const float* b_src[B_QUADS];
    bool a_row_in[A_QUADS], b_col_in[B_QUADS];
#pragma unroll
    for (int i = 0; i < A_QUADS; ++i) {
        const int f = tid + i * THREADS, r = row0 + f / 2;
        a_row_in[i] = r < m;
        a_src[i] = a + (size_t)(a_row_in[i] ? r : 0) * k + (f % 2) * 4;
    }
#pragma unroll
    for (int i = 0; i < B_QUADS; ++i) {
        const int f = tid + i * THREADS;
        b_col_in[i] = col0 + (f % (BN / 4)) * 4 < n;
        b_src[i] = b + (size_t)(f / (BN / 4)) * n + col0 + (f % (BN / 4)) * 4;
    }
    float4 a_next[A_QUADS], b_next[B_QUADS];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int i = 0; i < A_QUADS; ++i) {
            const int kq = k0 + ((tid + i * THREADS) % 2) * 4;
            a_next[i] = load_quad(a_src[i] + k0, a_row_in[i], kq, k, a_aligned);
        }
#pragma unroll
        for (int i = 0; i < B_QUADS; ++i) {
            const int f = tid + i * THREADS;
            b_next[i] = load_quad(b_src[i] + (size_t)k0 * n, b_col_in[i] && k0 + f / (BN / 4) < k,
                                  col0 + (f % (BN / 4)) * 4, n, b_aligned);
        }
    };
    auto stash = [&](int s) {
#pragma unroll
        for (int i = 0; i < A_QUADS; ++i) {
            const int f = tid + i * THREADS, r = f / 2, kk = (f % 2) * 4;
            as[s][kk + 0][r] = a_next[i].x;
            as[s][kk + 1][r] = a_next[i].y;
            as[s][kk + 2][r] = a_next[i].z;
            as[s][kk + 3][r] = a_next[i].w;
        }
#pragma unroll
        for (int i = 0; i < B_QUADS; ++i) {
            const int f = tid + i * THREADS;
            st4(&bs[s][f / (BN / 4)][(f % (BN / 4)) * 4], b_next[i]);
        }
    };

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    const int tiles = (k + BK - 1) / BK;
    fetch(0);
    stash(0);
    __syncthreads();
    for (int t = 0; t < tiles; ++t) {
        const int s = t % 2;
        if (t + 1 < tiles) fetch((t + 1) * BK);  // in flight while this stage is multiplied
        // Unrolled by two: fully unrolled, ptxas hoists the shared loads of all eight steps and
        // spills at the 128 registers two resident blocks allow.
#pragma unroll 2
        for (int kk = 0; kk < BK; ++kk) {
            const float4 a0 = ld4(&as[s][kk][wm + lm]), a1 = ld4(&as[s][kk][wm + 32 + lm]);
            const float4 b0 = ld4(&bs[s][kk][wn + ln]), b1 = ld4(&bs[s][kk][wn + 16 + ln]);
            const float ar[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float br[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
        }
        // The other stage was last read in tile t-1, before the barrier that ended it.
        if (t + 1 < tiles) stash(s ^ 1);
        __syncthreads();
    }

    // Rows i < 4 are wm + lm + i, rows i ≥ 4 are 32 further; columns likewise with 16.
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int r = row0 + wm + lm + (i % 4) + (i / 4) * 32;
        if (r >= m) continue;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int col = col0 + wn + ln + h * 16;
            float* p = c + (size_t)r * n + col;
            const float* v = &acc[i][h * 4];
            if (b_aligned && col + 3 < n) {
                st4(p, make_float4(v[0], v[1], v[2], v[3]));
            } else {
#pragma unroll
                for (int e = 0; e < 4; ++e)
                    if (col + e < n) p[e] = v[e];
            }
        }
    }
}

}  // namespace simt

extern "C" __global__ void __launch_bounds__(256, 2)  // two blocks per SM: at most 128 registers
matmul_fp32_simt(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                 int m, int n, int k) {
    simt::gemm<2, 4>(a, b, c, m, n, k);
}

extern "C" __global__ void __launch_bounds__(64)
matmul_fp32_simt_64(const float* __restrict__ a, const float* __restrict__ b,
                    float* __restrict__ c, int m, int n, int k) {
    simt::gemm<1, 2>(a, b, c, m, n, k);
}
