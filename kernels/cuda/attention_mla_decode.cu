// Absorbed multi-head latent attention decode (DeepSeek-V2/V3): one new token per sequence, many
// query heads sharing one cached latent per token. K = [c_kv, k_rope] (D = 576) and V = c_kv
// (its first DV = 512 columns) are the same buffer, read once: a block stages 32 cached rows in
// shared memory and uses them both for the scores and for P·V. A block owns 16 query heads of
// one (sequence, kv head) — the M of an m16n8k16 tensor-core tile, so the whole GPU streams the
// cache from 16 heads' worth of compute per byte — and one split of the context (split-KV); a
// second kernel merges the splits' partial softmaxes. Scores: each of the 4 warps takes a
// quarter of D and the partial sums meet in shared memory; P·V: each warp owns 128 output
// columns. f32 accumulation, softmax in base 2. The scale is an argument: MLA scores are scaled
// by 1/√(qk_nope + rope), not by 1/√D. Expect the cache streamed at a good fraction of HBM
// bandwidth at long contexts; loads are not yet pipelined (cp.async).
// Layout: Q [b, hq, 576], KV [b, hkv, skv, 576], O [b, hq, 512]; partials f32
// [b·hq, splits, DV + 2] (output, then max in base 2, then sum).
// Grid (splits, b·hkv·ceil(hq/hkv / 16)), block 128; combine: grid b·hq, block DV.

#define MLA_D 576
#define MLA_DV 512
#define MLA_HG 16
#define MLA_BC 32
#define MLA_WARPS 4
#define MLA_SROW (MLA_D + 8)
// D as 18 pairs of 16-wide k-chunks, dealt round-robin to the warps (5, 5, 4, 4).
#define MLA_PAIRS (MLA_D / 32)
#define MLA_PAIRS_PER_WARP ((MLA_PAIRS + MLA_WARPS - 1) / MLA_WARPS)

// The tensor-core primitives; scripts/mla_cuda_on_cpu.cpp supplies its own to run this file on
// the CPU.
#ifndef MLA_ON_CPU
__device__ __forceinline__ unsigned mla_pack2(float lo, float hi, __half) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}
__device__ __forceinline__ unsigned mla_pack2(float lo, float hi, __nv_bfloat16) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}
__device__ __forceinline__ void mla_mma(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                        unsigned b1, __half) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mla_mma(float (&c)[4], const unsigned (&a)[4], unsigned b0,
                                        unsigned b1, __nv_bfloat16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

template <typename T>
__device__ void mla_partial(const T* __restrict__ q, const T* __restrict__ kv,
                            float* __restrict__ part, int hq, int hkv, int skv, int chunk,
                            int window, float scale) {
    __shared__ __align__(16) T ks[MLA_BC * MLA_SROW];
    __shared__ float red[MLA_WARPS][MLA_HG][MLA_BC];
    __shared__ __align__(16) T ps[MLA_HG * (MLA_BC + 8)];
    __shared__ float corr_s[MLA_HG];

    const int hpk = hq / hkv, groups = (hpk + MLA_HG - 1) / MLA_HG;
    const int split = blockIdx.x, splits = gridDim.x;
    const int grp = blockIdx.y % groups, bk = blockIdx.y / groups;  // bk = b·hkv + hk
    const int b = bk / hkv, hk = bk % hkv;
    const int head0 = hk * hpk + grp * MLA_HG;  // first query head of the block
    const int heads = min(MLA_HG, hpk - grp * MLA_HG);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const float sl2 = scale * 1.4426950408889634f;
    const int first = window > 0 ? max(0, skv - window) : 0;
    const int j_begin = max(first, split * chunk), j_end = min(skv, (split + 1) * chunk);

    // Q fragments of this warp's k-chunk pairs (rows past `heads` are zero).
    const T* qb = q + ((size_t)b * hq + head0) * MLA_D;
    unsigned qf[MLA_PAIRS_PER_WARP][2][4];
    for (int i = 0; i < MLA_PAIRS_PER_WARP; ++i) {
        const int p = warp + MLA_WARPS * i;
        for (int hf = 0; hf < 2; ++hf) {
            const int c0 = (2 * p + hf) * 16 + 2 * t;
            auto get = [&](int r, int c) -> unsigned {
                if (p >= MLA_PAIRS || r >= heads) return 0u;
                return *reinterpret_cast<const unsigned*>(qb + (size_t)r * MLA_D + c);
            };
            qf[i][hf][0] = get(g, c0);
            qf[i][hf][1] = get(g + 8, c0);
            qf[i][hf][2] = get(g, c0 + 8);
            qf[i][hf][3] = get(g + 8, c0 + 8);
        }
    }

    // Softmax state: thread tid holds row tid / 8 (8 threads per head, 4 keys each).
    const int srow = threadIdx.x / 8, sl = threadIdx.x % 8;
    float m = NEG_INF, l = 0.f;
    float oacc[MLA_DV / MLA_WARPS / 8][4] = {};
    const T* kvb = kv + (size_t)bk * skv * MLA_D;

    for (int j0 = j_begin; j0 < j_end; j0 += MLA_BC) {
        for (int c = threadIdx.x; c < MLA_BC * MLA_D / 8; c += 32 * MLA_WARPS) {
            const int r = c / (MLA_D / 8), col = (c % (MLA_D / 8)) * 8;
            uint4 z = make_uint4(0, 0, 0, 0);
            if (j0 + r < j_end) z = *reinterpret_cast<const uint4*>(kvb + (size_t)(j0 + r) * MLA_D + col);
            *reinterpret_cast<uint4*>(ks + r * MLA_SROW + col) = z;
        }
        __syncthreads();

        // Partial S over this warp's share of D, 16 heads × 32 keys; K fragments by ldmatrix
        // (lanes 0-7 / 8-15 / 16-23 / 24-31: the tile's 8 keys at d offsets 0, 8, 16, 24).
        float s[MLA_BC / 8][4] = {};
        for (int nt = 0; nt < MLA_BC / 8; ++nt) {
            const T* kaddr = ks + (nt * 8 + (lane % 8)) * MLA_SROW + (lane / 8) * 8;
            for (int i = 0; i < MLA_PAIRS_PER_WARP; ++i) {
                const int p = warp + MLA_WARPS * i;
                if (p >= MLA_PAIRS) break;
                unsigned x[4];
                ldsm_x4(x, kaddr + p * 32);
                mla_mma(s[nt], qf[i][0], x[0], x[1], T());
                mla_mma(s[nt], qf[i][1], x[2], x[3], T());
            }
            const int col = nt * 8 + 2 * t;
            red[warp][g][col] = s[nt][0];
            red[warp][g][col + 1] = s[nt][1];
            red[warp][g + 8][col] = s[nt][2];
            red[warp][g + 8][col + 1] = s[nt][3];
        }
        __syncthreads();

        // Online softmax per head: sum the warps' partials, mask keys past the split.
        float e[4], tmax = NEG_INF;
        for (int u = 0; u < 4; ++u) {
            const int c = sl * 4 + u;
            float v = 0.f;
            for (int w = 0; w < MLA_WARPS; ++w) v += red[w][srow][c];
            e[u] = j0 + c < j_end ? v * sl2 : NEG_INF;
            tmax = fmaxf(tmax, e[u]);
        }
        for (int sh = 1; sh < 8; sh *= 2) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffff, tmax, sh));
        const float mn = fmaxf(m, tmax);  // finite: every tile holds at least one valid key
        const float corr = exp2f(m - mn);
        float tsum = 0.f;
        for (int u = 0; u < 4; ++u) {
            e[u] = exp2f(e[u] - mn);
            tsum += e[u];
        }
        for (int sh = 1; sh < 8; sh *= 2) tsum += __shfl_xor_sync(0xffffffff, tsum, sh);
        l = l * corr + tsum;
        m = mn;
        T* prow = ps + srow * (MLA_BC + 8) + sl * 4;
        *reinterpret_cast<unsigned*>(prow) = mla_pack2(e[0], e[1], T());
        *reinterpret_cast<unsigned*>(prow + 2) = mla_pack2(e[2], e[3], T());
        if (sl == 0) corr_s[srow] = corr;
        __syncthreads();

        // O (this warp's 128 columns) = O·corr + P·V, V the first DV columns of the staged rows.
        const float c_lo = corr_s[g], c_hi = corr_s[g + 8];
        for (int dn = 0; dn < MLA_DV / MLA_WARPS / 8; ++dn) {
            oacc[dn][0] *= c_lo; oacc[dn][1] *= c_lo;
            oacc[dn][2] *= c_hi; oacc[dn][3] *= c_hi;
        }
        for (int kc = 0; kc < MLA_BC / 16; ++kc) {
            unsigned pa[4];
            ldsm_x4(pa, ps + (lane % 16) * (MLA_BC + 8) + kc * 16 + (lane / 16) * 8);
            const T* vaddr = ks + (kc * 16 + (lane % 16)) * MLA_SROW + warp * (MLA_DV / MLA_WARPS) + (lane / 16) * 8;
            for (int dn = 0; dn < MLA_DV / MLA_WARPS / 8; dn += 2) {
                unsigned x[4];
                ldsm_x4_trans(x, vaddr + dn * 8);
                mla_mma(oacc[dn], pa, x[0], x[1], T());
                mla_mma(oacc[dn + 1], pa, x[2], x[3], T());
            }
        }
        __syncthreads();
    }

    // Unnormalized partial output, then max and sum, per head of the block.
    const size_t row_lo = ((size_t)b * hq + head0 + g) * splits + split;
    const size_t row_hi = ((size_t)b * hq + head0 + g + 8) * splits + split;
    for (int dn = 0; dn < MLA_DV / MLA_WARPS / 8; ++dn) {
        const int col = warp * (MLA_DV / MLA_WARPS) + dn * 8 + 2 * t;
        if (g < heads) {
            part[row_lo * (MLA_DV + 2) + col] = oacc[dn][0];
            part[row_lo * (MLA_DV + 2) + col + 1] = oacc[dn][1];
        }
        if (g + 8 < heads) {
            part[row_hi * (MLA_DV + 2) + col] = oacc[dn][2];
            part[row_hi * (MLA_DV + 2) + col + 1] = oacc[dn][3];
        }
    }
    if (sl == 0 && srow < heads) {
        float* p = part + (((size_t)b * hq + head0 + srow) * splits + split) * (MLA_DV + 2);
        p[MLA_DV] = m;
        p[MLA_DV + 1] = l;
    }
}

template <typename T>
__device__ void mla_combine(const float* __restrict__ part, T* __restrict__ o, int splits) {
    const int bh = blockIdx.x, c = threadIdx.x;
    const float* p = part + (size_t)bh * splits * (MLA_DV + 2);
    float mm = NEG_INF;
    for (int s = 0; s < splits; ++s) mm = fmaxf(mm, p[s * (MLA_DV + 2) + MLA_DV]);
    float l = 0.f, acc = 0.f;
    for (int s = 0; s < splits; ++s) {
        const float ms = p[s * (MLA_DV + 2) + MLA_DV];
        const float f = ms == NEG_INF ? 0.f : exp2f(ms - mm);
        l += p[s * (MLA_DV + 2) + MLA_DV + 1] * f;
        acc += p[s * (MLA_DV + 2) + c] * f;
    }
    o[(size_t)bh * MLA_DV + c] = from_f32<T>(l > 0.f ? acc / l : 0.f);
}

#define MLA_DECODE(NAME, T)                                                                       \
    extern "C" __global__ void __launch_bounds__(128)                                            \
        attn_mla_decode_##NAME(const T* q, const T* kv, float* part, int hq, int hkv, int skv,  \
                               int chunk, int window, float scale) {                             \
        mla_partial<T>(q, kv, part, hq, hkv, skv, chunk, window, scale);                          \
    }                                                                                             \
    extern "C" __global__ void attn_mla_decode_combine_##NAME(const float* part, T* o,           \
                                                              int splits) {                      \
        mla_combine<T>(part, o, splits);                                                          \
    }
MLA_DECODE(f16, __half)
MLA_DECODE(bf16, __nv_bfloat16)
