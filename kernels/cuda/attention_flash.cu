// Fused attention forward, FlashAttention-2 style, on tensor cores (mma.sync m16n8k16, f32
// accumulate): a block of 4 warps owns 64 query rows of one (batch, head), 16 rows per warp, with
// Q held in registers as MMA fragments. K and V stream through shared memory 64 keys at a time;
// S = QKᵀ stays in registers, the online softmax rescales the running output, and the
// probabilities are repacked in registers as the A operand of P·V; K and V fragments come from
// shared memory by ldmatrix. Causal blocks past the last query are skipped. Expect a large
// fraction of PyTorch SDPA (FA2) at long sequences; K/V loads are not yet pipelined (cp.async).
// Layout: any strided view — element (b, h, row, c) of Q at q + b·batch + h·head + row·row +
// offset + c, likewise K, V and O — so the benchmark passes [b, h, s, D] tensors and a
// transformer block passes token-major views into its QKV projection and writes O token-major
// for the output projection (rows 16-byte aligned: strides and offsets multiples of 8).
// D = 64 or 128. Grid (ceil(sq/64), b·hq), block 128; shared memory 2·64·(D+8) halves.

#define BR 64
#define BC 64

// Element strides (batch, head, row) and offset of one operand; the layout of all four.
struct Strided {
    long long batch, head, row, offset;
};
struct AttnLayout {
    Strided q, k, v, o;
};

__device__ __forceinline__ unsigned pack2(float lo, float hi, __half) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}
__device__ __forceinline__ unsigned pack2(float lo, float hi, __nv_bfloat16) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}
__device__ __forceinline__ void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1, __half) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
__device__ __forceinline__ void mma16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1, __nv_bfloat16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <typename T, int D>
__device__ void flash_fwd(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                          T* __restrict__ o, int hq, int hkv, int sq, int skv, int causal,
                          int window, float scale, const AttnLayout& lay) {
    const int SROW = D + 8;  // halves per shared row (padding breaks bank conflicts)
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T* ks = reinterpret_cast<T*>(smem_raw);
    T* vs = ks + BC * SROW;
    const int bh = blockIdx.y, b = bh / hq, h = bh % hq, hk = h / (hq / hkv);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int q0 = blockIdx.x * BR + warp * 16;  // this warp's first query row
    const int offset = skv - sq;
    const float sl2 = scale * 1.4426950408889634f;  // scale · log2(e): softmax in base 2

    const T* qb = q + b * lay.q.batch + h * lay.q.head + lay.q.offset;
    const T* kb = k + b * lay.k.batch + hk * lay.k.head + lay.k.offset;
    const T* vb = v + b * lay.v.batch + hk * lay.v.head + lay.v.offset;

    // Q fragments for the warp's 16 rows, D/16 k-chunks.
    unsigned qf[D / 16][4];
    const int r_lo = q0 + g, r_hi = q0 + g + 8;
    for (int kc = 0; kc < D / 16; ++kc) {
        const int c0 = kc * 16 + 2 * t;
        auto get = [&](int r, int c) -> unsigned {
            if (r >= sq) return 0u;
            return *reinterpret_cast<const unsigned*>(qb + r * lay.q.row + c);
        };
        qf[kc][0] = get(r_lo, c0);
        qf[kc][1] = get(r_hi, c0);
        qf[kc][2] = get(r_lo, c0 + 8);
        qf[kc][3] = get(r_hi, c0 + 8);
    }

    float oacc[D / 8][4] = {};
    float m_lo = NEG_INF, m_hi = NEG_INF, l_lo = 0.f, l_hi = 0.f;
    const int pos_lo = offset + r_lo, pos_hi = offset + r_hi;

    // Key range any row of the block can see.
    const int block_last = min(offset + (int)blockIdx.x * BR + BR - 1, skv - 1);
    const int block_first = offset + blockIdx.x * BR;
    int kv_end = causal ? block_last + 1 : skv;
    int kv_start = (causal && window > 0) ? max(0, block_first + 1 - window) : 0;
    kv_start = (kv_start / BC) * BC;

    for (int j0 = kv_start; j0 < kv_end; j0 += BC) {
        // Stage K and V tiles: BC rows × D halves, 16 bytes per thread per step.
        for (int c = threadIdx.x; c < BC * D / 8; c += 128) {
            int r = c / (D / 8), col = (c % (D / 8)) * 8;
            uint4 kz = make_uint4(0, 0, 0, 0), vz = make_uint4(0, 0, 0, 0);
            if (j0 + r < skv) {
                kz = *reinterpret_cast<const uint4*>(kb + (j0 + r) * lay.k.row + col);
                vz = *reinterpret_cast<const uint4*>(vb + (j0 + r) * lay.v.row + col);
            }
            *reinterpret_cast<uint4*>(ks + r * SROW + col) = kz;
            *reinterpret_cast<uint4*>(vs + r * SROW + col) = vz;
        }
        __syncthreads();

        // S = Q Kᵀ for 16 rows × 64 keys: 8 n-tiles.
        // K fragments by ldmatrix: lanes 0-7 / 8-15 / 16-23 / 24-31 address the 8 keys of the
        // tile at d offsets 0, 8, 16, 24 of a pair of k-chunks.
        float s[BC / 8][4] = {};
        for (int nt = 0; nt < BC / 8; ++nt) {
            const T* kaddr = ks + (nt * 8 + (lane % 8)) * SROW + (lane / 8) * 8;
            for (int kc = 0; kc < D / 16; kc += 2) {
                unsigned x[4];
                ldsm_x4(x, kaddr + kc * 16);
                mma16816(s[nt], qf[kc], x[0], x[1], T());
                mma16816(s[nt], qf[kc + 1], x[2], x[3], T());
            }
        }
        // Mask and scale; row maxima over this tile.
        float tmax_lo = NEG_INF, tmax_hi = NEG_INF;
        for (int nt = 0; nt < BC / 8; ++nt) {
            for (int e = 0; e < 4; ++e) {
                int key = j0 + nt * 8 + 2 * t + (e & 1);
                int pos = e < 2 ? pos_lo : pos_hi;
                bool ok = key < skv && (!causal || (key <= pos && (window == 0 || pos - key < window)));
                s[nt][e] = ok ? s[nt][e] * sl2 : NEG_INF;
            }
            tmax_lo = fmaxf(tmax_lo, fmaxf(s[nt][0], s[nt][1]));
            tmax_hi = fmaxf(tmax_hi, fmaxf(s[nt][2], s[nt][3]));
        }
        for (int sh = 1; sh <= 2; sh *= 2) {
            tmax_lo = fmaxf(tmax_lo, __shfl_xor_sync(0xffffffff, tmax_lo, sh));
            tmax_hi = fmaxf(tmax_hi, __shfl_xor_sync(0xffffffff, tmax_hi, sh));
        }
        const float mn_lo = fmaxf(m_lo, tmax_lo), mn_hi = fmaxf(m_hi, tmax_hi);
        // Rows that have seen no key yet keep a finite reference to avoid inf − inf.
        const float ref_lo = mn_lo == NEG_INF ? 0.f : mn_lo;
        const float ref_hi = mn_hi == NEG_INF ? 0.f : mn_hi;
        const float corr_lo = exp2f(m_lo - ref_lo), corr_hi = exp2f(m_hi - ref_hi);
        m_lo = mn_lo;
        m_hi = mn_hi;
        l_lo *= corr_lo;
        l_hi *= corr_hi;
        for (int dn = 0; dn < D / 8; ++dn) {
            oacc[dn][0] *= corr_lo; oacc[dn][1] *= corr_lo;
            oacc[dn][2] *= corr_hi; oacc[dn][3] *= corr_hi;
        }
        for (int nt = 0; nt < BC / 8; ++nt) {
            s[nt][0] = exp2f(s[nt][0] - ref_lo); s[nt][1] = exp2f(s[nt][1] - ref_lo);
            s[nt][2] = exp2f(s[nt][2] - ref_hi); s[nt][3] = exp2f(s[nt][3] - ref_hi);
            l_lo += s[nt][0] + s[nt][1];
            l_hi += s[nt][2] + s[nt][3];
        }
        // O += P V: P as A fragments (k = keys), V from shared (k = key, n = d).
        for (int kc = 0; kc < BC / 16; ++kc) {
            unsigned pa[4];
            pa[0] = pack2(s[2 * kc][0], s[2 * kc][1], T());
            pa[1] = pack2(s[2 * kc][2], s[2 * kc][3], T());
            pa[2] = pack2(s[2 * kc + 1][0], s[2 * kc + 1][1], T());
            pa[3] = pack2(s[2 * kc + 1][2], s[2 * kc + 1][3], T());
            // V fragments by ldmatrix.trans: 16 keys × two n8 column tiles per instruction.
            const T* vaddr = vs + (kc * 16 + (lane % 16)) * SROW + (lane / 16) * 8;
            for (int dn = 0; dn < D / 8; dn += 2) {
                unsigned x[4];
                ldsm_x4_trans(x, vaddr + dn * 8);
                mma16816(oacc[dn], pa, x[0], x[1], T());
                mma16816(oacc[dn + 1], pa, x[2], x[3], T());
            }
        }
        __syncthreads();
    }
    for (int sh = 1; sh <= 2; sh *= 2) {
        l_lo += __shfl_xor_sync(0xffffffff, l_lo, sh);
        l_hi += __shfl_xor_sync(0xffffffff, l_hi, sh);
    }
    const float inv_lo = l_lo > 0.f ? 1.f / l_lo : 0.f, inv_hi = l_hi > 0.f ? 1.f / l_hi : 0.f;
    T* ob = o + b * lay.o.batch + h * lay.o.head + lay.o.offset;
    for (int dn = 0; dn < D / 8; ++dn) {
        const int col = dn * 8 + 2 * t;
        if (r_lo < sq)
            *reinterpret_cast<unsigned*>(ob + r_lo * lay.o.row + col) =
                pack2(oacc[dn][0] * inv_lo, oacc[dn][1] * inv_lo, T());
        if (r_hi < sq)
            *reinterpret_cast<unsigned*>(ob + r_hi * lay.o.row + col) =
                pack2(oacc[dn][2] * inv_hi, oacc[dn][3] * inv_hi, T());
    }
}

#define FLASH(NAME, T, D)                                                                         \
    extern "C" __global__ void __launch_bounds__(128)                                            \
        attn_flash_##NAME##_d##D(const T* q, const T* k, const T* v, T* o, int hq, int hkv,     \
                                 int sq, int skv, int causal, int window, float scale,           \
                                 AttnLayout lay) {                                               \
        flash_fwd<T, D>(q, k, v, o, hq, hkv, sq, skv, causal, window, scale, lay);                \
    }
FLASH(f16, __half, 64)
FLASH(f16, __half, 128)
FLASH(bf16, __nv_bfloat16, 64)
FLASH(bf16, __nv_bfloat16, 128)
