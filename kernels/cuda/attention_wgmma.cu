// Attention forward for Hopper (sm_90a only), in the manner of FlashAttention-3: one CTA per
// (128-query tile, batch·head), a producer warpgroup streaming K and V tiles by TMA into a
// multi-stage mbarrier ring, two consumer warpgroups of 64 query rows each computing S = Q·Kᵀ
// with wgmma (Q and K from shared memory), the online softmax in fp32 on the accumulator
// fragments, and O += P·V with wgmma taking P from registers (converted to the input type) and
// V from shared memory. fp16 and bf16, head dims 64 and 128, causal (bottom-right aligned, as
// attention_flash.cu: query row r sees keys ≤ r + kv_len − q_len, and with a window w > 0 only
// the last w of them) and not, grouped-query heads (kv head = q head / (hq / hkv)). No
// log-sum-exp is written (attention_flash.cu writes none either).
//
// ---- Operands (the spec's tensor maps, kernels/cuda/specs.rs `attention_wgmma_launch`) --------
// Q, K, V: 3-D maps {d, len, batch·heads} over [batch, heads, len, d] storage whose (batch,
// head) pairs are equally spaced (head-major, or any view with batch stride = heads·head
// stride); the box is {64, 128, 1}: 64 values of d (128 bytes, the 128B swizzle span) by 128
// rows. TMA zero-fills rows past len, so ragged tiles need no special load; the scores of keys
// past kv_len are masked. O is written with plain stores through the AttnLayout strides.
//
// ---- Shared memory ------------------------------------------------------------------------------
// A tile of 128 rows × d is d/64 "column blocks", block c holding d values 64c..64c+63 of each
// row as 128 bytes at row·128, 16-byte chunks permuted by the 128B swizzle (chunk j of row r at
// j ^ (r % 8)); a block is 16 KiB and starts on a 1024-byte boundary. Layout: Q (d/64 blocks),
// then per stage K (d/64 blocks) and V (d/64 blocks), then the barriers.
// wgmma descriptors (128B swizzle, base offset 0):
//   Q as A, K-major: consumer w's rows start 64·128 bytes·w into each block; k16 step j is
//     block j/4 + 32 bytes·(j % 4); SBO 1024 (8-row groups), LBO unused.
//   K as B of Q·Kᵀ (n = key, k = d), K-major: the same walk over K's blocks, N = 128 keys.
//   V as B of P·V (k = key, n = d), MN-major (imm-trans-b = 1): k16 step j starts 16 key rows
//     (2048 bytes) into block 0; LBO 16 KiB (from one 64-wide block of d to the next), SBO 1024.
// P as the register A operand of m64nDk16: for keys 16j..16j+15, the S accumulator fragments
//   s[8j..8j+7] (rows g and g+8 of the warp, columns 2q, 2q+1 and 8 more) packed in pairs are
//   exactly the A fragment {a0: (g, 2q), a1: (g+8, 2q), a2: (g, 2q+8), a3: (g+8, 2q+8)}.
//
// ---- Pipeline -------------------------------------------------------------------------------------
// Warpgroup 0 (setmaxnreg.dec 40): one thread loads Q once (its own barrier), then per key tile
// waits for the stage to be empty, arms its full barrier with the K and V bytes and issues the
// TMA loads. Warpgroups 1 and 2 (setmaxnreg.inc 232), per key tile: wait for the stage, S = Q·Kᵀ
// (d/16 wgmma), mask where the tile needs it (keys past kv_len, the causal diagonal, the
// window), online softmax in base 2 (row max over the 4 threads of a row by shuffles), rescale O,
// pack P, P·V (8 wgmma), release the stage (every consumer thread arrives on its empty barrier).
// At d = 64, S(t) is issued before P·V(t − 1) and the softmax of S(t) runs while P·V(t − 1) is
// still on the tensor cores (the FlashAttention-3 paper's intra-warpgroup overlap); at d = 128,
// S, P and O together do not fit the 168 registers ptxas allocates, so the tiles run one after
// another. Both consumers walk the CTA's whole key range, so a stage is released once by 256
// threads; key tiles no query of the CTA sees are skipped, and query tiles are handed out
// longest-first (causal) by reversing blockIdx.x. Stages: 4 of 32 KiB at d = 64, 3 of 64 KiB at
// d = 128.
//
// Launch: grid (ceil(q_len / 128), batch·q_heads, 1), block 384, dynamic shared memory
// AwTile::SMEM (specs.rs `attention_wgmma_smem` computes the same; a launch with less returns
// without writing). Entry points attn_wgmma_{f16,bf16}_d{64,128}:
// (map Q, map K, map V, o, hq, hkv, sq, skv, causal, window, scale, layout).

#define AW_THREADS 128      // threads per warpgroup
#define AW_BM 128           // query rows per CTA: two consumer warpgroups of 64
#define AW_BN 128           // keys per tile
#define AW_BLOCK 16384      // bytes of one 128-row × 64-value column block

// The CUtensorMap the host encodes (cuTensorMapEncodeTiled), passed by value.
struct __align__(64) TmaMap {
    unsigned long long opaque[16];
};

// Element strides (batch, head, row) and offset of one operand; only O's are read here.
struct Strided {
    long long batch, head, row, offset;
};
struct AttnLayout {
    Strided q, k, v, o;
};

template <int D, int STAGES> struct AwTile {
    static const int BLOCKS = D / 64;                    // column blocks per tile
    static const int TILE_BYTES = BLOCKS * AW_BLOCK;     // one 128-row tile of Q, K or V
    static const int STAGE_BYTES = 2 * TILE_BYTES;       // K and V
    // 1024 bytes of slack to align the base to the swizzle atom, Q, the stages, then a full and
    // an empty barrier per stage and Q's barrier (8 bytes each).
    static const int SMEM = 1024 + TILE_BYTES + STAGES * STAGE_BYTES + (2 * STAGES + 1) * 8;
};

// The shared-memory (32-bit) address of a generic pointer into shared memory.
__device__ __forceinline__ unsigned smem_u32(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

// A wgmma shared-memory matrix descriptor: start address, leading and stride byte offsets (all
// in 16-byte units, 14 bits each), layout type 1 = 128B swizzle in bits 62-63, base offset 0.
__device__ __forceinline__ unsigned long long wg_desc(unsigned addr, unsigned lbo, unsigned sbo) {
    return (unsigned long long)((addr & 0x3FFFF) >> 4) |
           ((unsigned long long)((lbo >> 4) & 0x3FFF) << 16) |
           ((unsigned long long)((sbo >> 4) & 0x3FFF) << 32) | (1ull << 62);
}

// Two values of the input type as one 32-bit word, the first in the low half.
template <typename T> __device__ __forceinline__ unsigned pack2(float lo, float hi) {
    union Bits {
        T v;
        unsigned short u;
    } a, b;
    a.v = from_f32<T>(lo);
    b.v = from_f32<T>(hi);
    return (unsigned)a.u | ((unsigned)b.u << 16);
}

#ifndef WGMMA_ON_CPU
extern __shared__ __align__(16) u8 aw_smem_raw[];
__device__ __forceinline__ u8* wg_smem() { return aw_smem_raw; }
__device__ __forceinline__ unsigned wg_dynamic_smem() {
    unsigned r;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;\n" : "=r"(r));
    return r;
}

__device__ __forceinline__ void mbar_init(unsigned long long* bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_u32(bar)), "r"(count));
}
// Makes the initialized barriers visible to the other threads and to the TMA unit.
__device__ __forceinline__ void mbar_fence_init() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
__device__ __forceinline__ void mbar_expect_tx(unsigned long long* bar, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n"
                 ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned long long* bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_u32(bar)) : "memory");
}
// Waits for the phase of parity `parity` to complete; traps after 4 s (a stuck pipeline fails
// the launch instead of hanging the device).
__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
    const unsigned addr = smem_u32(bar);
    unsigned long long start = 0;
    for (unsigned spins = 0;; ++spins) {
        unsigned done;
        asm volatile(
            "{\n.reg .pred p;\n"
            "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
            "selp.u32 %0, 1, 0, p;\n}\n"
            : "=r"(done) : "r"(addr), "r"(parity) : "memory");
        if (done) return;
        if ((spins & 1023) == 0) {
            unsigned long long now;
            asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(now));
            if (start == 0) start = now;
            else if (now - start > 4000000000ull) __trap();
        }
    }
}

// TMA: the box at coordinates (c0, c1, c2) (innermost first) of `map` into shared memory at
// `dst`, completing the box's bytes on the barrier.
__device__ __forceinline__ void tma_load_3d(void* dst, const TmaMap* map, unsigned long long* bar,
                                            int c0, int c1, int c2) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%3, %4, %5}], [%2];\n"
        ::"r"(smem_u32(dst)), "l"(reinterpret_cast<unsigned long long>(map)), "r"(smem_u32(bar)),
          "r"(c0), "r"(c1), "r"(c2)
        : "memory");
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads or writes across a wgmma wait.
__device__ __forceinline__ void acc_fence(float& r) { asm volatile("" : "+f"(r)::"memory"); }
// Keeps P's registers alive until a wgmma that reads them is waited for.
__device__ __forceinline__ void reg_fence(unsigned& r) { asm volatile("" : "+r"(r)::"memory"); }

template <int N> __device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> __device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

#define AW_D32 "{" \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, " \
    "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
    "}"
#define AW_OPS32 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), \
    "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), \
    "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), \
    "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), \
    "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define AW_D64 "{" \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, " \
    "%18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, " \
    "%34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, " \
    "%50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
    "}"
#define AW_OPS64 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), \
    "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), \
    "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), \
    "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), \
    "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), \
    "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), \
    "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), \
    "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), \
    "+f"(d[62]), "+f"(d[63])

// S += Q·Kᵀ for one k16 step: m64n128k16, A and B from shared memory, both K-major
// (imm-trans-a = imm-trans-b = 0), scale-d = 1. d[i]: row 16·warp + lane/4 + 8·(i/2 % 2), key
// 8·(i/4) + 2·(lane % 4) + i % 2.
#define AW_SS(TY)                                                                               \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                   \
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " " AW_D64            \
                 ", %64, %65, p, 1, 1, 0, 0;\n}\n"                                              \
                 : AW_OPS64                                                                     \
                 : "l"(da), "l"(db), "r"(1))
template <typename T>
__device__ __forceinline__ void wgmma_qk(float (&d)[64], unsigned long long da, unsigned long long db);
template <> __device__ __forceinline__ void wgmma_qk<__half>(float (&d)[64], unsigned long long da, unsigned long long db) {
    AW_SS("f16");
}
template <> __device__ __forceinline__ void wgmma_qk<__nv_bfloat16>(float (&d)[64], unsigned long long da, unsigned long long db) {
    AW_SS("bf16");
}

// O += P·V for one k16 step (16 keys): m64nDk16, A (P) from four registers, B (V) from shared
// memory MN-major (imm-trans-b = 1), scale-d = 1.
#define AW_RS(SHAPE, TY, DREGS, OPS, A, B, S)                                                   \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" S ", 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned." SHAPE ".f32." TY "." TY " " DREGS ", " A      \
                 ", %" B ", p, 1, 1, 1;\n}\n"                                                   \
                 : OPS                                                                          \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1))
#define AW_A32 "{%32, %33, %34, %35}"
#define AW_A64 "{%64, %65, %66, %67}"
template <typename T, int D>
__device__ __forceinline__ void wgmma_pv(float (&d)[D / 2], const unsigned (&a)[4], unsigned long long db);
template <> __device__ __forceinline__ void wgmma_pv<__half, 64>(float (&d)[32], const unsigned (&a)[4], unsigned long long db) {
    AW_RS("m64n64k16", "f16", AW_D32, AW_OPS32, AW_A32, "36", "37");
}
template <> __device__ __forceinline__ void wgmma_pv<__nv_bfloat16, 64>(float (&d)[32], const unsigned (&a)[4], unsigned long long db) {
    AW_RS("m64n64k16", "bf16", AW_D32, AW_OPS32, AW_A32, "36", "37");
}
template <> __device__ __forceinline__ void wgmma_pv<__half, 128>(float (&d)[64], const unsigned (&a)[4], unsigned long long db) {
    AW_RS("m64n128k16", "f16", AW_D64, AW_OPS64, AW_A64, "68", "69");
}
template <> __device__ __forceinline__ void wgmma_pv<__nv_bfloat16, 128>(float (&d)[64], const unsigned (&a)[4], unsigned long long db) {
    AW_RS("m64n128k16", "bf16", AW_D64, AW_OPS64, AW_A64, "68", "69");
}
#endif  // WGMMA_ON_CPU

// The key tiles a CTA's queries see, [first, end) in keys: all of them, or under the causal
// mask those up to the last query's position (and from the first query's window start),
// the start rounded down to a whole tile.
__device__ __forceinline__ void key_range(int q0, int sq, int skv, int causal, int window,
                                          int& first, int& end) {
    const int offset = skv - sq;
    const int first_pos = offset + q0, last_pos = offset + min(q0 + AW_BM, sq) - 1;
    end = causal ? min(last_pos + 1, skv) : skv;
    first = (causal && window > 0) ? max(0, first_pos + 1 - window) : 0;
    first = (first / AW_BN) * AW_BN;
    if (end < first) end = first;
}

// One thread's online-softmax state for its two rows (g and g + 8 of its warp's 16).
struct RowState {
    int pos_lo, pos_hi;  // the rows' positions in the context
    float sl2;           // scale · log2(e)
    float m_lo = NEG_INF, m_hi = NEG_INF, l_lo = 0.f, l_hi = 0.f;  // running max (base 2), sum
};

// The online softmax of one tile of scores (the accumulator fragments of S = Q·Kᵀ): scaled, and
// masked when `edge`, the running maxima and sums updated; leaves P = exp2(S − max) in s and the
// factors the running output must be rescaled by in corr_lo / corr_hi.
__device__ __forceinline__ void softmax_tile(float (&s)[AW_BN / 2], RowState& st, int j0, int skv,
                                             int causal, int window, bool edge, int q,
                                             float& corr_lo, float& corr_hi) {
    float tmax_lo = NEG_INF, tmax_hi = NEG_INF;
#pragma unroll
    for (int i = 0; i < AW_BN / 2; ++i) {
        float x = s[i] * st.sl2;
        if (edge) {
            const int key = j0 + 8 * (i / 4) + 2 * q + (i % 2);
            const int pos = (i / 2) % 2 ? st.pos_hi : st.pos_lo;
            const bool ok = key < skv &&
                            (!causal || (key <= pos && (window == 0 || pos - key < window)));
            if (!ok) x = NEG_INF;
        }
        s[i] = x;
        if ((i / 2) % 2) tmax_hi = fmaxf(tmax_hi, x);
        else tmax_lo = fmaxf(tmax_lo, x);
    }
    // A row's 128 keys lie over the 4 threads of a quad.
#pragma unroll
    for (int sh = 1; sh <= 2; sh *= 2) {
        tmax_lo = fmaxf(tmax_lo, __shfl_xor_sync(0xffffffff, tmax_lo, sh));
        tmax_hi = fmaxf(tmax_hi, __shfl_xor_sync(0xffffffff, tmax_hi, sh));
    }
    const float mn_lo = fmaxf(st.m_lo, tmax_lo), mn_hi = fmaxf(st.m_hi, tmax_hi);
    // A row that has seen no key yet keeps a finite reference, avoiding inf − inf.
    const float ref_lo = mn_lo == NEG_INF ? 0.f : mn_lo;
    const float ref_hi = mn_hi == NEG_INF ? 0.f : mn_hi;
    corr_lo = exp2f(st.m_lo - ref_lo);
    corr_hi = exp2f(st.m_hi - ref_hi);
    st.m_lo = mn_lo;
    st.m_hi = mn_hi;
    float sum_lo = 0.f, sum_hi = 0.f;
#pragma unroll
    for (int i = 0; i < AW_BN / 2; ++i) {
        const bool hi = (i / 2) % 2;
        s[i] = exp2f(s[i] - (hi ? ref_hi : ref_lo));
        if (hi) sum_hi += s[i];
        else sum_lo += s[i];
    }
    st.l_lo = st.l_lo * corr_lo + sum_lo;
    st.l_hi = st.l_hi * corr_hi + sum_hi;
}

// Issues O += P·V over a tile's 128 keys (8 k16 steps), V's tile at shared address va.
template <typename T, int D>
__device__ __forceinline__ void pv_tile(float (&o)[D / 2], const unsigned (&pa)[AW_BN / 16][4],
                                        unsigned va) {
    wgmma_fence();
#pragma unroll
    for (int j = 0; j < AW_BN / 16; ++j)
        wgmma_pv<T, D>(o, pa[j], wg_desc(va + j * 16 * 128, AW_BLOCK, 1024));
}

template <typename T, int D, int STAGES, bool OVERLAP>
__device__ __forceinline__ void attention_wgmma(const TmaMap* tq, const TmaMap* tk,
                                                const TmaMap* tv, T* __restrict__ o, int hq,
                                                int hkv, int sq, int skv, int causal, int window,
                                                float scale, const AttnLayout& lay) {
    typedef AwTile<D, STAGES> L;
    if (wg_dynamic_smem() < (unsigned)L::SMEM) return;  // launched with too little: write nothing

    u8* smem = wg_smem();
    smem += (1024 - (smem_u32(smem) & 1023)) & 1023;  // the swizzle atom's alignment
    u8* qs = smem;
    u8* stages = smem + L::TILE_BYTES;
    unsigned long long* full = reinterpret_cast<unsigned long long*>(stages + STAGES * L::STAGE_BYTES);
    unsigned long long* empty = full + STAGES;
    unsigned long long* qbar = empty + STAGES;

    const int q0 = (gridDim.x - 1 - blockIdx.x) * AW_BM;  // longest causal tiles first
    const int bh = blockIdx.y, b = bh / hq, h = bh % hq, hk = h / (hq / hkv);
    int kv_first, kv_end;
    key_range(q0, sq, skv, causal, window, kv_first, kv_end);
    const int tiles = (kv_end - kv_first + AW_BN - 1) / AW_BN;
    const int wg = threadIdx.x / AW_THREADS;

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&full[s], 1);                    // the producer's expect_tx arrival
            mbar_init(&empty[s], 2 * AW_THREADS);      // every consumer thread
        }
        mbar_init(qbar, 1);
        mbar_fence_init();
    }
    __syncthreads();

    if (wg == 0) {
        // Producer: one thread issues every load; the warpgroup gives up its registers.
        setmaxnreg_dec<40>();
        if (threadIdx.x == 0) {
            mbar_expect_tx(qbar, L::TILE_BYTES);
            for (int c = 0; c < L::BLOCKS; ++c)
                tma_load_3d(qs + c * AW_BLOCK, tq, qbar, 64 * c, q0, bh);
            const int kvz = b * hkv + hk;
            int s = 0;
            unsigned phase = 0;
            for (int t = 0; t < tiles; ++t) {
                const int j0 = kv_first + t * AW_BN;
                mbar_wait(&empty[s], phase ^ 1);
                mbar_expect_tx(&full[s], L::STAGE_BYTES);
                u8* ks = stages + s * L::STAGE_BYTES;
                u8* vs = ks + L::TILE_BYTES;
                for (int c = 0; c < L::BLOCKS; ++c) {
                    tma_load_3d(ks + c * AW_BLOCK, tk, &full[s], 64 * c, j0, kvz);
                    tma_load_3d(vs + c * AW_BLOCK, tv, &full[s], 64 * c, j0, kvz);
                }
                if (++s == STAGES) {
                    s = 0;
                    phase ^= 1;
                }
            }
        }
        return;
    }

    // Consumers: warpgroup wg owns query rows q0 + 64·(wg − 1)...
    setmaxnreg_inc<232>();
    const int cw = wg - 1;
    const int tid = threadIdx.x % AW_THREADS;
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
    const int r_lo = q0 + cw * 64 + warp * 16 + g, r_hi = r_lo + 8;  // this thread's two rows
    RowState st;
    st.pos_lo = skv - sq + r_lo;
    st.pos_hi = st.pos_lo + 8;
    st.sl2 = scale * 1.4426950408889634f;  // scale · log2(e): softmax in base 2
    const unsigned qa = smem_u32(qs + cw * 64 * 128);
    const int diagonal = skv - sq + q0;  // the CTA's first query's position

    float oacc[D / 2];
#pragma unroll
    for (int i = 0; i < D / 2; ++i) {
        oacc[i] = 0.0f;
        acc_fence(oacc[i]);
    }
    float sacc[AW_BN / 2];
    unsigned pa[AW_BN / 16][4];  // P of the previous tile, the A operand of its P·V

    mbar_wait(qbar, 0);
    int s = 0, prev = 0;
    unsigned phase = 0;
    // The next tile's stage waited for, S = Q·Kᵀ issued into sacc (not waited for).
    auto issue_qk = [&]() {
        mbar_wait(&full[s], phase);
        const unsigned ka = smem_u32(stages + s * L::STAGE_BYTES);
#pragma unroll
        for (int i = 0; i < AW_BN / 2; ++i) {
            sacc[i] = 0.0f;
            acc_fence(sacc[i]);
        }
        wgmma_fence();
#pragma unroll
        for (int j = 0; j < D / 16; ++j) {
            const unsigned step = (j / 4) * AW_BLOCK + (j % 4) * 32;
            wgmma_qk<T>(sacc, wg_desc(qa + step, 16, 1024), wg_desc(ka + step, 16, 1024));
        }
        wgmma_commit();
    };
    // The softmax of tile t's scores (S waited for), masked where some key of the tile may be
    // hidden from some row of the CTA: past kv_len, at or past the first query's diagonal, or
    // under a window.
    auto softmax = [&](int t, float& corr_lo, float& corr_hi) {
#pragma unroll
        for (int i = 0; i < AW_BN / 2; ++i) acc_fence(sacc[i]);
        const int j0 = kv_first + t * AW_BN;
        const bool edge = j0 + AW_BN > skv || (causal && (j0 + AW_BN - 1 > diagonal || window > 0));
        softmax_tile(sacc, st, j0, skv, causal, window, edge, q, corr_lo, corr_hi);
    };
    // O rescaled, then P in the input type as wgmma A fragments (keys 16j..16j+15 are
    // s[8j..8j+7]); the stage moves on.
    auto rescale_and_pack = [&](float corr_lo, float corr_hi) {
#pragma unroll
        for (int i = 0; i < D / 2; ++i) oacc[i] *= (i / 2) % 2 ? corr_hi : corr_lo;
#pragma unroll
        for (int j = 0; j < AW_BN / 16; ++j) {
            pa[j][0] = pack2<T>(sacc[8 * j], sacc[8 * j + 1]);
            pa[j][1] = pack2<T>(sacc[8 * j + 2], sacc[8 * j + 3]);
            pa[j][2] = pack2<T>(sacc[8 * j + 4], sacc[8 * j + 5]);
            pa[j][3] = pack2<T>(sacc[8 * j + 6], sacc[8 * j + 7]);
        }
        prev = s;
        if (++s == STAGES) {
            s = 0;
            phase ^= 1;
        }
    };
    // After P·V of the tile in stage `prev` is waited for: its registers read, its stage released.
    auto retire_pv = [&]() {
#pragma unroll
        for (int i = 0; i < D / 2; ++i) acc_fence(oacc[i]);
#pragma unroll
        for (int j = 0; j < AW_BN / 16; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) reg_fence(pa[j][e]);
        mbar_arrive(&empty[prev]);
    };
    const unsigned v_of = smem_u32(stages) + L::TILE_BYTES;  // V of stage 0
    float corr_lo, corr_hi;
    if (OVERLAP) {
        // S = Q·Kᵀ(t) is issued, then P·V(t − 1) behind it; the softmax of S(t) runs while
        // P·V(t − 1) is still on the tensor cores (the FlashAttention-3 paper's intra-warpgroup
        // overlap). Holds S, P and O at once: d = 64 only, in the registers ptxas gives.
        if (tiles > 0) {
            issue_qk();
            wgmma_wait<0>();
            softmax(0, corr_lo, corr_hi);
            rescale_and_pack(corr_lo, corr_hi);
            for (int t = 1; t < tiles; ++t) {
                issue_qk();
                pv_tile<T, D>(oacc, pa, v_of + prev * L::STAGE_BYTES);
                wgmma_commit();
                wgmma_wait<1>();  // S(t) is done; P·V(t − 1) may still run
                softmax(t, corr_lo, corr_hi);
                wgmma_wait<0>();
                retire_pv();
                rescale_and_pack(corr_lo, corr_hi);
            }
            pv_tile<T, D>(oacc, pa, v_of + prev * L::STAGE_BYTES);
            wgmma_commit();
            wgmma_wait<0>();
            retire_pv();
        }
    } else {
        // One tile at a time: S, softmax, P·V, release.
        for (int t = 0; t < tiles; ++t) {
            issue_qk();
            wgmma_wait<0>();
            softmax(t, corr_lo, corr_hi);
            rescale_and_pack(corr_lo, corr_hi);
            pv_tile<T, D>(oacc, pa, v_of + prev * L::STAGE_BYTES);
            wgmma_commit();
            wgmma_wait<0>();
            retire_pv();
        }
    }
    float l_lo = st.l_lo, l_hi = st.l_hi;

    // The row sums over the quad, then O / l out through the layout (rows past q_len dropped).
#pragma unroll
    for (int sh = 1; sh <= 2; sh *= 2) {
        l_lo += __shfl_xor_sync(0xffffffff, l_lo, sh);
        l_hi += __shfl_xor_sync(0xffffffff, l_hi, sh);
    }
    const float inv_lo = l_lo > 0.f ? 1.f / l_lo : 0.f, inv_hi = l_hi > 0.f ? 1.f / l_hi : 0.f;
    T* ob = o + b * lay.o.batch + h * lay.o.head + lay.o.offset;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
        const int col = 8 * n + 2 * q;
        if (r_lo < sq)
            *reinterpret_cast<unsigned*>(ob + r_lo * lay.o.row + col) =
                pack2<T>(oacc[4 * n] * inv_lo, oacc[4 * n + 1] * inv_lo);
        if (r_hi < sq)
            *reinterpret_cast<unsigned*>(ob + r_hi * lay.o.row + col) =
                pack2<T>(oacc[4 * n + 2] * inv_hi, oacc[4 * n + 3] * inv_hi);
    }
}

// Stages per head dim: three of 64 KiB at d = 128 (Q 32 KiB, 225 KiB in all: the next tile
// loads while one is read and the previous one's P·V drains), four of 32 KiB at d = 64 (Q 16 KiB,
// 145 KiB).
#define AW_STAGES_64 4
#define AW_STAGES_128 3
// Whether S(t) overlaps P·V(t − 1): at d = 128, S, P and O together spill.
#define AW_OVERLAP_64 true
#define AW_OVERLAP_128 false

#define ATTN_WGMMA(NAME, T, D)                                                                  \
    extern "C" __global__ void __launch_bounds__(3 * AW_THREADS, 1) attn_wgmma_##NAME##_d##D(   \
        const __grid_constant__ TmaMap tq, const __grid_constant__ TmaMap tk,                   \
        const __grid_constant__ TmaMap tv, T* o, int hq, int hkv, int sq, int skv, int causal,  \
        int window, float scale, AttnLayout lay) {                                              \
        attention_wgmma<T, D, AW_STAGES_##D, AW_OVERLAP_##D>(&tq, &tk, &tv, o, hq, hkv, sq, skv, causal, window, \
                                             scale, lay);                                       \
    }
ATTN_WGMMA(f16, __half, 64)
ATTN_WGMMA(f16, __half, 128)
ATTN_WGMMA(bf16, __nv_bfloat16, 64)
ATTN_WGMMA(bf16, __nv_bfloat16, 128)
