// Tensor-core matmul with mma.sync (Ampere+ warp-level MMA): tf32, fp16 and bf16 with fp32
// accumulate, int8 with int32 accumulate, fp8 e4m3 with fp32 accumulate (sm_89+).
//
// A 128×128 block per 8 warps (2×4), each warp a 64×32 patch as 4×4 m16n8 MMA tiles. Each K step
// stages 64 bytes of every A row and B column in shared memory through a two-stage cp.async
// pipeline (the next tile loads while this one multiplies); fragments are read from shared memory
// with ldmatrix (fp16, bf16) or per the PTX fragment layouts (tf32, int8, fp8). Expect well
// above the SIMT kernels; deeper pipelines, larger warp tiles and Hopper's wgmma are what stand
// between this and cuBLAS.
//
// Layouts: A row-major m×k. B row-major k×n for 16- and 32-bit types; for 8-bit types B is given
// as n×k (k contiguous, "TN", as cuBLASLt requires for fp8). C row-major m×n in OUT (fp32 for
// tf32, the input type for fp16/bf16, bf16 for fp8, int32 for int8).
// Grid (ceil(n/128), ceil(m/128), batch), block 256, dynamic shared memory: see smem_bytes().

#define BM 128
#define BN 128
#define KBYTES 64            // bytes of K per stage, per row
#define PAD 16               // bytes of padding per shared row (keeps 16-byte alignment)
#define ROWB (KBYTES + PAD)  // bytes per shared row

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
    unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::); }

__device__ __forceinline__ unsigned ld32(const u8* p) { return *reinterpret_cast<const unsigned*>(p); }
__device__ __forceinline__ unsigned pack16(const u8* lo, const u8* hi) {
    return (unsigned)*reinterpret_cast<const unsigned short*>(lo) |
           ((unsigned)*reinterpret_cast<const unsigned short*>(hi) << 16);
}
__device__ __forceinline__ unsigned tf32_bits(const u8* p) {
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(*reinterpret_cast<const float*>(p)));
    return r;
}

// Per-type traits: element size, whether B is k-contiguous (8-bit), one MMA.
struct F16 { static const int E = 2; static const bool BT = false; };
struct BF16 { static const int E = 2; static const bool BT = false; };
struct TF32 { static const int E = 4; static const bool BT = false; };
struct I8 { static const int E = 1; static const bool BT = true; };
struct E4M3 { static const int E = 1; static const bool BT = true; };

// A fragment of a 16×(K step) tile at shared row base `as` (rows g and g+8), k offset in bytes.
template <typename Ty> __device__ __forceinline__ void load_a(unsigned (&a)[4], const u8* as, int g, int t, int kb);
template <> __device__ __forceinline__ void load_a<F16>(unsigned (&a)[4], const u8* as, int g, int t, int kb) {
    const u8* r0 = as + g * ROWB + kb;
    const u8* r8 = as + (g + 8) * ROWB + kb;
    a[0] = ld32(r0 + t * 4); a[1] = ld32(r8 + t * 4);
    a[2] = ld32(r0 + 16 + t * 4); a[3] = ld32(r8 + 16 + t * 4);
}
template <> __device__ __forceinline__ void load_a<BF16>(unsigned (&a)[4], const u8* as, int g, int t, int kb) {
    load_a<F16>(a, as, g, t, kb);
}
template <> __device__ __forceinline__ void load_a<TF32>(unsigned (&a)[4], const u8* as, int g, int t, int kb) {
    const u8* r0 = as + g * ROWB + kb;
    const u8* r8 = as + (g + 8) * ROWB + kb;
    a[0] = tf32_bits(r0 + t * 4); a[1] = tf32_bits(r8 + t * 4);
    a[2] = tf32_bits(r0 + 16 + t * 4); a[3] = tf32_bits(r8 + 16 + t * 4);
}
template <> __device__ __forceinline__ void load_a<I8>(unsigned (&a)[4], const u8* as, int g, int t, int kb) {
    const u8* r0 = as + g * ROWB + kb;
    const u8* r8 = as + (g + 8) * ROWB + kb;
    a[0] = ld32(r0 + t * 4); a[1] = ld32(r8 + t * 4);
    a[2] = ld32(r0 + 16 + t * 4); a[3] = ld32(r8 + 16 + t * 4);
}
template <> __device__ __forceinline__ void load_a<E4M3>(unsigned (&a)[4], const u8* as, int g, int t, int kb) {
    load_a<I8>(a, as, g, t, kb);
}

// B fragment for an n8 tile. 16/32-bit types: shared B is k-major (row kk holds 128 n values,
// BN*E bytes + PAD). 8-bit: shared B is n-major like A (row n holds the K step).
#define BROWB(E) (BN * (E) + PAD)
template <typename Ty> __device__ __forceinline__ void load_b(unsigned (&b)[2], const u8* bs, int n0, int g, int t, int kstep);
template <> __device__ __forceinline__ void load_b<F16>(unsigned (&b)[2], const u8* bs, int n0, int g, int t, int kstep) {
    const int rb = BROWB(2), col = (n0 + g) * 2;
    const u8* k0 = bs + (kstep + 2 * t) * rb + col;
    b[0] = pack16(k0, k0 + rb);
    b[1] = pack16(k0 + 8 * rb, k0 + 9 * rb);
}
template <> __device__ __forceinline__ void load_b<BF16>(unsigned (&b)[2], const u8* bs, int n0, int g, int t, int kstep) {
    load_b<F16>(b, bs, n0, g, t, kstep);
}
template <> __device__ __forceinline__ void load_b<TF32>(unsigned (&b)[2], const u8* bs, int n0, int g, int t, int kstep) {
    const int rb = BROWB(4), col = (n0 + g) * 4;
    b[0] = tf32_bits(bs + (kstep + t) * rb + col);
    b[1] = tf32_bits(bs + (kstep + t + 4) * rb + col);
}
template <> __device__ __forceinline__ void load_b<I8>(unsigned (&b)[2], const u8* bs, int n0, int g, int t, int kstep) {
    const u8* r = bs + (n0 + g) * ROWB + kstep;
    b[0] = ld32(r + t * 4);
    b[1] = ld32(r + 16 + t * 4);
}
template <> __device__ __forceinline__ void load_b<E4M3>(unsigned (&b)[2], const u8* bs, int n0, int g, int t, int kstep) {
    load_b<I8>(b, bs, n0, g, t, kstep);
}

template <typename Ty> __device__ __forceinline__ void mma(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]);
template <> __device__ __forceinline__ void mma<F16>(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma<BF16>(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma<TF32>(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
// int8 accumulates in int32; the accumulator registers are reinterpreted.
template <> __device__ __forceinline__ void mma<I8>(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    int* ci = reinterpret_cast<int*>(c);
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+r"(ci[0]), "+r"(ci[1]), "+r"(ci[2]), "+r"(ci[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
template <> __device__ __forceinline__ void mma<E4M3>(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
    asm volatile("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    __trap();  // fp8 MMA needs sm_89 or newer
#endif
}

// K elements per MMA for each type.
template <typename Ty> struct KMMA;
template <> struct KMMA<F16> { static const int V = 16; };
template <> struct KMMA<BF16> { static const int V = 16; };
template <> struct KMMA<TF32> { static const int V = 8; };
template <> struct KMMA<I8> { static const int V = 32; };
template <> struct KMMA<E4M3> { static const int V = 32; };

// Copies a tile of `tile_rows` rows × `tile_bytes` bytes, starting at (row0, col0), out of a
// row-major rows × cols matrix of E-byte elements into shared memory: 16-byte cp.async where the
// global rows are 16-byte aligned (vec), element loads otherwise; zero fill past the edges.
__device__ __forceinline__ void load_tile(u8* dst, int dst_row_bytes, const u8* src, int rows,
                                          int cols, int row0, int col0, int tile_rows,
                                          int tile_bytes, int E, bool vec) {
    const int chunks = tile_bytes / 16;
    for (int c = threadIdx.x; c < tile_rows * chunks; c += 256) {
        int r = c / chunks, cb = (c % chunks) * 16;
        int gr = row0 + r, gc = col0 + cb / E;
        u8* d = dst + r * dst_row_bytes + cb;
        if (vec) {
            int valid = gr < rows ? max(0, min(16, (cols - gc) * E)) : 0;
            const u8* s = src + ((size_t)(gr < rows ? gr : 0) * cols + (valid > 0 ? gc : 0)) * E;
            cp_async16(d, s, valid);
        } else {
            for (int e = 0; e < 16; e += E) {
                int cc = gc + e / E;
                bool ok = gr < rows && cc < cols;
                for (int byte = 0; byte < E; ++byte)
                    d[e + byte] = ok ? src[((size_t)gr * cols + cc) * E + byte] : 0;
            }
        }
    }
}

// One stage (KBYTES of K) of A (m×k) and B (k×n, or n×k for 8-bit types) into shared memory.
template <typename Ty>
__device__ __forceinline__ void load_stage(u8* as, u8* bs, const u8* a, const u8* b, int m, int n,
                                           int k, int row0, int col0, int k0, bool vec) {
    const int E = Ty::E, KE = KBYTES / E;  // K elements per stage
    load_tile(as, ROWB, a, m, k, row0, k0, BM, KBYTES, E, vec);
    if (Ty::BT) {
        load_tile(bs, ROWB, b, n, k, col0, k0, BN, KBYTES, E, vec);
    } else {
        load_tile(bs, BROWB(E), b, k, n, k0, col0, KE, BN * E, E, vec);
    }
}

template <typename Ty, typename Out>
__device__ void mma_gemm(const u8* __restrict__ a, const u8* __restrict__ b, Out* __restrict__ c,
                         int m, int n, int k) {
    extern __shared__ __align__(16) u8 smem[];
    const int E = Ty::E, KE = KBYTES / E, KM = KMMA<Ty>::V;
    const int a_bytes = BM * ROWB;
    const int b_bytes = Ty::BT ? BN * ROWB : KE * BROWB(E);
    u8* as[2] = {smem, smem + a_bytes + b_bytes};
    u8* bs[2] = {smem + a_bytes, smem + 2 * a_bytes + b_bytes};

    size_t z = blockIdx.z;
    a += z * (size_t)m * k * E;
    b += z * (size_t)k * n * E;
    c += z * (size_t)m * n;
    const int row0 = blockIdx.y * BM, col0 = blockIdx.x * BN;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = (warp / 4) * 64, wn = (warp % 4) * 32;  // 2 × 4 warps of 64×32
    const int g = lane / 4, t = lane % 4;
    // 16-byte copies need every row start 16-byte aligned.
    const bool vec = ((k * E) % 16 == 0) && (Ty::BT ? true : (n * E) % 16 == 0);

    float acc[4][4][4] = {};
    const int steps = ceil_div(k, KE);
    load_stage<Ty>(as[0], bs[0], a, b, m, n, k, row0, col0, 0, vec);
    cp_async_commit();
    for (int s = 0; s < steps; ++s) {
        const int cur = s & 1;
        if (s + 1 < steps) {
            load_stage<Ty>(as[cur ^ 1], bs[cur ^ 1], a, b, m, n, k, row0, col0, (s + 1) * KE, vec);
        }
        cp_async_commit();
        // Wait for the stage about to be used (all but the most recent group).
        asm volatile("cp.async.wait_group 1;\n" ::);
        __syncthreads();
        for (int kk = 0; kk < KE; kk += KM) {
            unsigned af[4][4], bf[4][2];
            if constexpr (Ty::E == 2) {
                // 16-bit types: fragments straight from ldmatrix (A as is, B transposed), one
                // instruction per 16×16 A tile and per pair of n8 B tiles, conflict-free rows.
                const int r = lane % 16, half = lane / 16;
                for (int i = 0; i < 4; ++i)
                    ldsm_x4(af[i], as[cur] + (wm + i * 16 + r) * ROWB + kk * 2 + half * 16);
                for (int j = 0; j < 4; j += 2) {
                    unsigned x[4];
                    ldsm_x4_trans(x, bs[cur] + (kk + r) * BROWB(2) + (wn + j * 8 + half * 8) * 2);
                    bf[j][0] = x[0]; bf[j][1] = x[1]; bf[j + 1][0] = x[2]; bf[j + 1][1] = x[3];
                }
            } else {
                for (int i = 0; i < 4; ++i) load_a<Ty>(af[i], as[cur] + (wm + i * 16) * ROWB, g, t, kk * E);
                for (int j = 0; j < 4; ++j) load_b<Ty>(bf[j], bs[cur], wn + j * 8, g, t, kk);
            }
            for (int i = 0; i < 4; ++i)
                for (int j = 0; j < 4; ++j) mma<Ty>(acc[i][j], af[i], bf[j]);
        }
        __syncthreads();
    }
    cp_async_wait_all();
    for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {
            int r = row0 + wm + i * 16 + g;
            int col = col0 + wn + j * 8 + t * 2;
            for (int h = 0; h < 2; ++h) {
                int rr = r + h * 8;
                if (rr >= m) continue;
                for (int e = 0; e < 2; ++e) {
                    if (col + e < n) {
                        float v = acc[i][j][h * 2 + e];
                        c[(size_t)rr * n + col + e] = Out(v);
                    }
                }
            }
        }
    }
}

// Out conversions: fp32, fp16, bf16, and int32 from the int accumulator bits.
struct I32Out {
    int v;
    __device__ I32Out(float bits) : v(__float_as_int(bits)) {}
};
struct H16Out {
    __half v;
    __device__ H16Out(float x) : v(__float2half_rn(x)) {}
};
struct B16Out {
    __nv_bfloat16 v;
    __device__ B16Out(float x) : v(__float2bfloat16_rn(x)) {}
};

extern "C" __global__ void __launch_bounds__(256)
mma_tf32(const u8* a, const u8* b, float* c, int m, int n, int k) { mma_gemm<TF32, float>(a, b, c, m, n, k); }
extern "C" __global__ void __launch_bounds__(256)
mma_f16(const u8* a, const u8* b, H16Out* c, int m, int n, int k) { mma_gemm<F16, H16Out>(a, b, c, m, n, k); }
extern "C" __global__ void __launch_bounds__(256)
mma_bf16(const u8* a, const u8* b, B16Out* c, int m, int n, int k) { mma_gemm<BF16, B16Out>(a, b, c, m, n, k); }
extern "C" __global__ void __launch_bounds__(256)
mma_i8(const u8* a, const u8* b, I32Out* c, int m, int n, int k) { mma_gemm<I8, I32Out>(a, b, c, m, n, k); }
extern "C" __global__ void __launch_bounds__(256)
mma_e4m3(const u8* a, const u8* b, B16Out* c, int m, int n, int k) { mma_gemm<E4M3, B16Out>(a, b, c, m, n, k); }
