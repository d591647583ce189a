// Hopper GEMM (sm_90a only): TMA loads into 128-byte-swizzled shared memory, a multi-stage
// mbarrier pipeline fed by a producer warpgroup, wgmma.mma_async on one or two consumer
// warpgroups, persistent CTAs over a grouped raster of output tiles, and an epilogue that stages
// each 64-column slab of the accumulators in shared memory for 16-byte coalesced stores.
// fp16 and bf16 (m64nNk16, fp32 accumulate, output in the input type) and fp8 e4m3 (m64nNk32,
// fp32 accumulate, bf16 output).
//
// ---- Operands, as the CUDA backend lays them out (src/measure/backend/cuda/mod.rs) ----------
// Matmul{batch, m, n, k}: C[z] = A[z]·B[z] for z < batch, every matrix row-major and batches
// back to back.
//   A: m×k, k contiguous                      -> "K-major" for wgmma.
//   B, fp16/bf16: k×n, n contiguous (as cuBLAS "NN" reads it here)
//                                            -> "MN-major" B: wgmma's imm-trans-b = 1.
//   B, fp8 e4m3: stored n×k, k contiguous (the backend transposes 8-bit B, the "TN" layout
//       cuBLASLt requires for fp8 and the only one fp8 wgmma reads) -> K-major B.
//   C: m×n, n contiguous, fp16/bf16 (fp8 writes bf16).
// fp8 scaling: per-tensor scales are 1, as in the `mma` e4m3 kernel and the cuBLASLt reference
// (which sets no scale pointers, so cuBLASLt's default of 1 holds): C = A·B rounded to bf16.
//
// ---- Shared memory, one stage (a BK slice of K: 128 bytes of K, 64 16-bit or 128 fp8 values) --
// A tile, BM×BK (K-major): TMA box {BK, BM, 1} of the 3-D map {k, m, batch}. Row r of the tile
//   is the 128 bytes at r·128, its 16-byte chunks permuted by the 128B swizzle:
//   chunk j of row r lands at chunk j ^ (r % 8). Eight rows make one 1024-byte swizzle atom.
//   wgmma descriptor (K-major, SWIZZLE_128B): start = row 64·w of the tile (w the consumer
//   warpgroup) + 32 bytes per k16 step (k32 for fp8), LBO unused (16), SBO = 1024 (the stride
//   between 8-row groups).
// B tile, fp16/bf16 (MN-major): BN/64 TMA boxes {64, BK, 1} of the map {n, k, batch}, box c
//   (columns 64c..64c+63 of the tile) at c·(BK·128) = c·8 KiB: k-row r of a box is the 128
//   bytes (64 values of n) at r·128, swizzled as above. Descriptor (MN-major, SWIZZLE_128B):
//   start = k-row 16·s of box 0 (s the k16 step: + 2048 bytes per step), LBO = 8 KiB (from one
//   64-wide n block to the next), SBO = 1024 (from 8 k-rows to the next 8).
// B tile, fp8 (K-major): one box {BK, BN, 1} of the map {k, n, batch}, laid out like A;
//   descriptor as for A, start + 32 bytes per k32 step.
// Every stage buffer starts on a 1024-byte boundary (the swizzle atom), so the 128B swizzle
// of TMA writes and wgmma reads, both functions of the shared address, agree, and no
// descriptor needs a base offset. TMA zero-fills outside the matrix, so edge tiles and a K that
// is not a multiple of BK need no special case; the stores skip rows ≥ m and columns ≥ n.
//
// ---- Alignment (the spec's `accepts`) ----------------------------------------------------------
// TMA needs 16-byte aligned row strides: k·elem_bytes and (16-bit B) n·2 multiples of 16, so
// k % 8 == 0 for fp16/bf16, k % 16 == 0 for fp8, and n % 8 == 0 for the 16-byte output stores.
//
// ---- Pipeline ----------------------------------------------------------------------------------
// Warpgroup 0 is the producer (setmaxnreg.dec to 40 registers); one thread of it walks the same
// tiles as the consumers and, per K block, waits for the stage to be empty, arms its full
// barrier with the stage's byte count (mbarrier.arrive.expect_tx) and issues the TMA loads.
// Warpgroups 1..CONSUMERS (setmaxnreg.inc to 232) each own 64 rows of the BM-row tile: wait for
// the stage to fill (mbarrier.try_wait.parity), four wgmma per stage, commit, then wait until
// only this stage's group is in flight (wgmma.wait_group 1) and release the previous stage to
// the producer (every consumer thread arrives on its empty barrier). Stage s, phase p: the
// consumers wait on full[s] for parity p, the producer on empty[s] for parity p ^ 1 (a fresh
// barrier counts its "previous" phase as complete, so the first pass does not wait).
// Persistent: grid = min(tiles, SMs); CTA b takes tiles b, b + grid, ... of a grouped raster
// (GROUP_M tile rows at a time, column by column within the group) so concurrent CTAs share A
// and B tiles in L2. The producer runs ahead into the next tile while the consumers store this
// one.
//
// Launch: grid (min(tiles, SMs), 1, 1), block 128·(1 + CONSUMERS), dynamic shared memory
// WgTile::SMEM (specs.rs, WgmmaTile::smem, computes the same; a launch with less returns without
// writing, so the correctness gate fails instead of memory being overrun).
// Entry points wgmma_{f16,bf16,e4m3}_m{BM}n{BN}: (map A, map B, C, m, n, k, batch).

#define WG_THREADS 128
#define KBYTES 128          // bytes of K per stage: one 128-byte swizzle span
#define GROUP_M 8           // tile rows per raster group
#define EPI_COLS 64         // output columns per epilogue slab
#define EPI_ROW_BYTES 144   // 64 16-bit values + 16 bytes of padding: conflict-free rows

// The CUtensorMap the host encodes (cuTensorMapEncodeTiled), passed by value.
struct __align__(64) TmaMap {
    unsigned long long opaque[16];
};

// Input types: bytes per value, K per wgmma, whether B arrives MN-major (k×n).
struct WF16 { static const int E = 2; static const int KSTEP = 16; static const bool B_MN = true; };
struct WBF16 { static const int E = 2; static const int KSTEP = 16; static const bool B_MN = true; };
struct WE4M3 { static const int E = 1; static const int KSTEP = 32; static const bool B_MN = false; };

template <int CONSUMERS, int BN, int STAGES> struct WgTile {
    static const int BM = 64 * CONSUMERS;
    static const int A_BYTES = BM * KBYTES;
    static const int B_BYTES = BN * KBYTES;
    static const int STAGE_BYTES = A_BYTES + B_BYTES;
    static const int EPI_BYTES = CONSUMERS * 64 * EPI_ROW_BYTES;
    // 1024 bytes of slack to align the base to the swizzle atom, the stages, the epilogue
    // slabs, then a full and an empty barrier (8 bytes each) per stage.
    static const int SMEM = 1024 + STAGES * STAGE_BYTES + EPI_BYTES + STAGES * 16;
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

#ifndef WGMMA_ON_CPU
// Declared 16-byte aligned only, so the compiler keeps the run-time rounding up to 1024 below
// (the base is 1024-aligned in practice; the slack costs 1 KiB when it is).
extern __shared__ __align__(16) u8 wg_smem_raw[];
__device__ __forceinline__ u8* wg_smem() { return wg_smem_raw; }
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
// Waits for the phase of parity `parity` to complete. A wait of more than 4 s means the
// pipeline is stuck (a wrong byte count, a lost arrival): trap, so the launch fails with an
// error instead of hanging the device.
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
// `dst`, completing `bytes` of the barrier's transaction count.
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

template <int N> __device__ __forceinline__ void setmaxnreg_dec() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> __device__ __forceinline__ void setmaxnreg_inc() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
// A barrier among the 128 threads of one consumer warpgroup (ids 1.., 0 is __syncthreads).
__device__ __forceinline__ void wg_bar_sync(int id) {
    asm volatile("bar.sync %0, 128;\n" ::"r"(id) : "memory");
}

// One wgmma of a warpgroup's 64×BN accumulator tile: D += A·B with A 64×KSTEP and B KSTEP×BN
// from shared memory (descriptors), D in registers (d[i]: row 16·warp + lane/4 + 8·(i/2 % 2),
// column 8·(i/4) + 2·(lane % 4) + i % 2). scale-d = 1 (accumulate), imm-scale-a/b = 1 (no
// negation); for 16-bit types imm-trans-a = 0 (A K-major) and imm-trans-b = 1 (B MN-major).
#define WG_D128 "{" \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" "}"
#define WG_OPS128 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define WG_D256 "{" \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, " \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, " \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, " \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127" "}"
#define WG_OPS256 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), \
    "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), \
    "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), \
    "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), \
    "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), \
    "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), \
    "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), \
    "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])

#define WGMMA_ASM(SHAPE_TYPES, DREGS, OPS, A, B, S, TAIL)                                       \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" S ", 0;\n"                                 \
                 "wgmma.mma_async.sync.aligned." SHAPE_TYPES " " DREGS ", %" A ", %" B         \
                 ", p, 1, 1" TAIL ";\n}\n"                                                      \
                 : OPS                                                                          \
                 : "l"(da), "l"(db), "r"(1))

template <typename Ty, int BN>
__device__ __forceinline__ void wgmma_tile(float (&d)[BN / 2], unsigned long long da,
                                           unsigned long long db);
template <> __device__ __forceinline__ void wgmma_tile<WF16, 256>(float (&d)[128], unsigned long long da, unsigned long long db) {
    WGMMA_ASM("m64n256k16.f32.f16.f16", WG_D256, WG_OPS256, "128", "129", "130", ", 0, 1");
}
template <> __device__ __forceinline__ void wgmma_tile<WBF16, 256>(float (&d)[128], unsigned long long da, unsigned long long db) {
    WGMMA_ASM("m64n256k16.f32.bf16.bf16", WG_D256, WG_OPS256, "128", "129", "130", ", 0, 1");
}
template <> __device__ __forceinline__ void wgmma_tile<WE4M3, 256>(float (&d)[128], unsigned long long da, unsigned long long db) {
    WGMMA_ASM("m64n256k32.f32.e4m3.e4m3", WG_D256, WG_OPS256, "128", "129", "130", "");
}
template <> __device__ __forceinline__ void wgmma_tile<WF16, 128>(float (&d)[64], unsigned long long da, unsigned long long db) {
    WGMMA_ASM("m64n128k16.f32.f16.f16", WG_D128, WG_OPS128, "64", "65", "66", ", 0, 1");
}
template <> __device__ __forceinline__ void wgmma_tile<WBF16, 128>(float (&d)[64], unsigned long long da, unsigned long long db) {
    WGMMA_ASM("m64n128k16.f32.bf16.bf16", WG_D128, WG_OPS128, "64", "65", "66", ", 0, 1");
}
template <> __device__ __forceinline__ void wgmma_tile<WE4M3, 128>(float (&d)[64], unsigned long long da, unsigned long long db) {
    WGMMA_ASM("m64n128k32.f32.e4m3.e4m3", WG_D128, WG_OPS128, "64", "65", "66", "");
}
#endif  // WGMMA_ON_CPU

// Two outputs as one 32-bit word, the first in the low half.
template <typename Out> __device__ __forceinline__ unsigned pack2(float lo, float hi) {
    union Bits {
        Out v;
        unsigned short u;
    } a, b;
    a.v = from_f32<Out>(lo);
    b.v = from_f32<Out>(hi);
    return (unsigned)a.u | ((unsigned)b.u << 16);
}

// Tile t of the grouped raster: GROUP_M tile rows at a time, down each column of the group
// before moving right, batches one after another. Sets the tile's first row, first column and
// batch.
__device__ __forceinline__ void tile_at(int t, int tiles_m, int tiles_n, int bm, int bn, int& m0,
                                        int& n0, int& z) {
    const int per_batch = tiles_m * tiles_n;
    z = t / per_batch;
    t -= z * per_batch;
    const int group = t / (GROUP_M * tiles_n);
    const int first = group * GROUP_M;
    const int rows = min(tiles_m - first, GROUP_M);
    const int r = t - group * GROUP_M * tiles_n;
    m0 = (first + r % rows) * bm;
    n0 = (r / rows) * bn;
}

template <typename Ty, typename Out, int CONSUMERS, int BN, int STAGES>
__device__ __forceinline__ void wgmma_gemm(const TmaMap* ta, const TmaMap* tb, Out* __restrict__ c,
                                           int m, int n, int k, int batch) {
    typedef WgTile<CONSUMERS, BN, STAGES> T;
    const int BK = KBYTES / Ty::E;  // K values per stage
    if (wg_dynamic_smem() < (unsigned)T::SMEM) return;  // launched with too little: write nothing

    u8* smem = wg_smem();
    smem += (1024 - (smem_u32(smem) & 1023)) & 1023;  // the swizzle atom's alignment
    u8* a_stages = smem;
    u8* b_stages = smem + STAGES * T::A_BYTES;
    u8* epi = smem + STAGES * T::STAGE_BYTES;
    unsigned long long* full = reinterpret_cast<unsigned long long*>(epi + T::EPI_BYTES);
    unsigned long long* empty = full + STAGES;

    const int tiles_m = ceil_div(m, T::BM), tiles_n = ceil_div(n, BN);
    const int tiles = tiles_m * tiles_n * batch;
    const int kblocks = ceil_div(k, BK);
    const int wg = threadIdx.x / WG_THREADS;

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; ++s) {
            mbar_init(&full[s], 1);                         // the producer's expect_tx arrival
            mbar_init(&empty[s], CONSUMERS * WG_THREADS);   // every consumer thread
        }
        mbar_fence_init();
    }
    __syncthreads();

    if (wg == 0) {
        // Producer: one thread issues every load; the warpgroup gives up its registers.
        setmaxnreg_dec<40>();
        if (threadIdx.x == 0) {
            int s = 0;
            unsigned phase = 0;
            for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
                int m0, n0, z;
                tile_at(t, tiles_m, tiles_n, T::BM, BN, m0, n0, z);
                for (int kb = 0; kb < kblocks; ++kb) {
                    mbar_wait(&empty[s], phase ^ 1);
                    mbar_expect_tx(&full[s], T::STAGE_BYTES);
                    u8* a = a_stages + s * T::A_BYTES;
                    u8* b = b_stages + s * T::B_BYTES;
                    tma_load_3d(a, ta, &full[s], kb * BK, m0, z);
                    if (Ty::B_MN) {
                        // 64 columns of n per 128-byte swizzle span: BN/64 boxes of BK k-rows.
                        for (int j = 0; j < BN / 64; ++j)
                            tma_load_3d(b + j * (BK * KBYTES), tb, &full[s], n0 + 64 * j, kb * BK, z);
                    } else {
                        tma_load_3d(b, tb, &full[s], kb * BK, n0, z);
                    }
                    if (++s == STAGES) {
                        s = 0;
                        phase ^= 1;
                    }
                }
            }
        }
        return;
    }

    // Consumers: warpgroup wg owns rows 64·(wg − 1).. of each tile.
    setmaxnreg_inc<232>();
    const int cw = wg - 1;
    const int tid = threadIdx.x % WG_THREADS;
    const int warp = tid / 32, lane = tid % 32, g = lane / 4, q = lane % 4;
    u8* slab = epi + cw * 64 * EPI_ROW_BYTES;
    float d[BN / 2];
    int s = 0;
    unsigned phase = 0;
    for (int t = blockIdx.x; t < tiles; t += gridDim.x) {
        int m0, n0, z;
        tile_at(t, tiles_m, tiles_n, T::BM, BN, m0, n0, z);
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) {
            d[i] = 0.0f;
            acc_fence(d[i]);  // the zeros are written before the first wgmma.fence
        }
        int prev = -1;
        for (int kb = 0; kb < kblocks; ++kb) {
            mbar_wait(&full[s], phase);
            const unsigned a = smem_u32(a_stages + s * T::A_BYTES + cw * 64 * KBYTES);
            const unsigned b = smem_u32(b_stages + s * T::B_BYTES);
            wgmma_fence();
#pragma unroll
            for (int j = 0; j < KBYTES / (Ty::KSTEP * Ty::E); ++j) {
                // k step j: 32 bytes further along each K-major row; for MN-major B, 16 k-rows
                // (two 8-row groups) further down.
                const unsigned long long da = wg_desc(a + j * 32, 16, 1024);
                const unsigned long long db = Ty::B_MN
                                                  ? wg_desc(b + j * 16 * KBYTES, BK * KBYTES, 1024)
                                                  : wg_desc(b + j * 32, 16, 1024);
                wgmma_tile<Ty, BN>(d, da, db);
            }
            wgmma_commit();
            // This stage's wgmmas may still run; the previous stage's are done: release it.
            wgmma_wait<1>();
            if (prev >= 0) mbar_arrive(&empty[prev]);
            prev = s;
            if (++s == STAGES) {
                s = 0;
                phase ^= 1;
            }
        }
        wgmma_wait<0>();
#pragma unroll
        for (int i = 0; i < BN / 2; ++i) acc_fence(d[i]);
        mbar_arrive(&empty[prev]);

        // Epilogue, 64 columns at a time: fragments into the slab (rows 144 bytes apart, so the
        // 32 lanes' 4-byte writes hit 32 different banks), then each row's 128 bytes out as
        // eight 16-byte stores.
        Out* cz = c + (size_t)z * m * n;
        const int row0 = m0 + cw * 64;
#pragma unroll
        for (int p = 0; p < BN / EPI_COLS; ++p) {
#pragma unroll
            for (int j = 0; j < EPI_COLS / 8; ++j) {
                const int i = (p * (EPI_COLS / 8) + j) * 4;
                const int r = warp * 16 + g, col = j * 8 + 2 * q;
                *reinterpret_cast<unsigned*>(slab + r * EPI_ROW_BYTES + col * 2) =
                    pack2<Out>(d[i], d[i + 1]);
                *reinterpret_cast<unsigned*>(slab + (r + 8) * EPI_ROW_BYTES + col * 2) =
                    pack2<Out>(d[i + 2], d[i + 3]);
            }
            wg_bar_sync(1 + cw);
            for (int x = tid; x < 64 * (EPI_COLS / 8); x += WG_THREADS) {
                const int r = x / (EPI_COLS / 8), ch = x % (EPI_COLS / 8);
                const int gr = row0 + r, gc = n0 + p * EPI_COLS + ch * 8;
                if (gr < m && gc < n)
                    *reinterpret_cast<uint4*>(cz + (size_t)gr * n + gc) =
                        *reinterpret_cast<const uint4*>(slab + r * EPI_ROW_BYTES + ch * 16);
            }
            wg_bar_sync(1 + cw);
        }
    }
}

// The large tile: 128×256, two consumer warpgroups, 4 stages of 48 KiB.
#define WG_LARGE 2, 256, 4
// The narrow tile for small m: 64×128, one consumer warpgroup, 8 stages of 24 KiB.
#define WG_NARROW 1, 128, 8

#define WGMMA_ENTRY(NAME, TY, OUT, THREADS, TILE)                                              \
    extern "C" __global__ void __launch_bounds__(THREADS, 1)                                   \
        NAME(const __grid_constant__ TmaMap ta, const __grid_constant__ TmaMap tb, OUT* c, int m, \
             int n, int k, int batch) {                                                         \
        wgmma_gemm<TY, OUT, TILE>(&ta, &tb, c, m, n, k, batch);                                 \
    }

WGMMA_ENTRY(wgmma_f16_m128n256, WF16, __half, 384, WG_LARGE)
WGMMA_ENTRY(wgmma_bf16_m128n256, WBF16, __nv_bfloat16, 384, WG_LARGE)
WGMMA_ENTRY(wgmma_e4m3_m128n256, WE4M3, __nv_bfloat16, 384, WG_LARGE)
WGMMA_ENTRY(wgmma_f16_m64n128, WF16, __half, 256, WG_NARROW)
WGMMA_ENTRY(wgmma_bf16_m64n128, WBF16, __nv_bfloat16, 256, WG_NARROW)
WGMMA_ENTRY(wgmma_e4m3_m64n128, WE4M3, __nv_bfloat16, 256, WG_NARROW)
