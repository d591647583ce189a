// Decode attention: one new query token per (batch, head) against a long KV cache, as serving
// systems run it. The cache is split across blocks (split-KV, "flash-decoding") so that a batch
// of a few sequences still fills the GPU: each block reduces its slice of `chunk` keys to a
// partial (max, sum, output) with 16-byte coalesced loads, and a second kernel merges the
// partials. The splits tile the keys the query sees ([skv − window, skv) with a window); the spec
// sizes them from batch × heads × context so that about two waves of blocks stream the cache
// (specs.rs, decode_split).
// Memory-bound by design: expect a large fraction of the HBM bandwidth at long contexts.
// Layout: Q [b, hq, 1, D], K/V [b, hkv, skv, D], O [b, hq, 1, D]; partials f32
// [b·hq, splits, D + 2]. Grid (splits, b·hq), block 128 (4 warps); combine: grid b·hq, block D.

#define WARPS 4

// Eight consecutive 16-bit values (16 bytes) as floats.
__device__ __forceinline__ void load8(const __half* p, float (&x)[8]) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __half2* h = reinterpret_cast<const __half2*>(&u);
    for (int i = 0; i < 4; ++i) {
        float2 f = __half22float2(h[i]);
        x[2 * i] = f.x;
        x[2 * i + 1] = f.y;
    }
}
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&x)[8]) {
    uint4 u = *reinterpret_cast<const uint4*>(p);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
    for (int i = 0; i < 4; ++i) {
        float2 f = __bfloat1622float2(h[i]);
        x[2 * i] = f.x;
        x[2 * i + 1] = f.y;
    }
}

// Each key is read by a group of D/8 lanes, 16 bytes each (coalesced); a warp covers 32/(D/8)
// keys per step and the block's 4 warps walk the split's keys together.
template <typename T, int D>
__device__ void decode_partial(const T* __restrict__ q, const T* __restrict__ k,
                               const T* __restrict__ v, float* __restrict__ part, int hq,
                               int hkv, int skv, int chunk, int window, float scale) {
    const int G = D / 8, KPW = 32 / G;
    const int split = blockIdx.x, splits = gridDim.x, bh = blockIdx.y;
    const int b = bh / hq, h = bh % hq, hk = h / (hq / hkv);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int grp = lane / G, gl = lane % G;
    const int pos = skv - 1;
    const int first = window > 0 ? max(0, pos + 1 - window) : 0;
    const int j_begin = first + split * chunk, j_end = min(skv, j_begin + chunk);

    float qv[8];
    load8(q + (size_t)bh * D + gl * 8, qv);
    for (int e = 0; e < 8; ++e) qv[e] *= scale;
    const T* kb = k + ((size_t)b * hkv + hk) * skv * D + gl * 8;
    const T* vb = v + ((size_t)b * hkv + hk) * skv * D + gl * 8;

    float m = NEG_INF, l = 0.f, acc[8] = {};
    // The loop bound is the same for every lane of a warp (the shuffles need all 32 lanes);
    // groups past the end of the split load nothing and change nothing.
    for (int j0 = j_begin + warp * KPW; j0 < j_end; j0 += WARPS * KPW) {
        const int j = j0 + grp;
        const bool valid = j < j_end;
        float kx[8] = {}, vx[8] = {};
        if (valid) {
            load8(kb + (size_t)j * D, kx);
            load8(vb + (size_t)j * D, vx);
        }
        float dot = 0.f;
        for (int e = 0; e < 8; ++e) dot += qv[e] * kx[e];
        for (int sh = G / 2; sh > 0; sh /= 2) dot += __shfl_xor_sync(0xffffffff, dot, sh);
        if (valid) {
            const float mn = fmaxf(m, dot);
            const float corr = __expf(m - mn), p = __expf(dot - mn);
            l = l * corr + p;
            for (int e = 0; e < 8; ++e) acc[e] = acc[e] * corr + p * vx[e];
            m = mn;
        }
    }
    // Merge the WARPS·KPW partial softmaxes of the block through shared memory.
    __shared__ float sm[WARPS * KPW], sl[WARPS * KPW], sacc[WARPS * KPW][D];
    const int idx = warp * KPW + grp;
    if (gl == 0) { sm[idx] = m; sl[idx] = l; }
    for (int e = 0; e < 8; ++e) sacc[idx][gl * 8 + e] = acc[e];
    __syncthreads();
    float* out = part + ((size_t)bh * splits + split) * (D + 2);
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float mm = NEG_INF;
        for (int w = 0; w < WARPS * KPW; ++w) mm = fmaxf(mm, sm[w]);
        float ll = 0.f, o = 0.f;
        for (int w = 0; w < WARPS * KPW; ++w) {
            float f = sm[w] == NEG_INF ? 0.f : __expf(sm[w] - mm);
            ll += sl[w] * f;
            o += sacc[w][c] * f;
        }
        out[c] = o;
        if (c == 0) { out[D] = mm; out[D + 1] = ll; }
    }
}

template <typename T, int D>
__device__ void decode_combine(const float* __restrict__ part, T* __restrict__ o, int splits) {
    const int bh = blockIdx.x, c = threadIdx.x;
    const float* p = part + (size_t)bh * splits * (D + 2);
    float mm = NEG_INF;
    for (int s = 0; s < splits; ++s) mm = fmaxf(mm, p[s * (D + 2) + D]);
    float l = 0.f, acc = 0.f;
    for (int s = 0; s < splits; ++s) {
        float ms = p[s * (D + 2) + D];
        float f = ms == NEG_INF ? 0.f : __expf(ms - mm);
        l += p[s * (D + 2) + D + 1] * f;
        acc += p[s * (D + 2) + c] * f;
    }
    o[(size_t)bh * D + c] = from_f32<T>(acc / l);
}

#define DECODE(NAME, T, D)                                                                        \
    extern "C" __global__ void __launch_bounds__(128)                                            \
        attn_decode_##NAME##_d##D(const T* q, const T* k, const T* v, float* part, int hq,      \
                                  int hkv, int skv, int chunk, int window, float scale) {        \
        decode_partial<T, D>(q, k, v, part, hq, hkv, skv, chunk, window, scale);                  \
    }                                                                                             \
    extern "C" __global__ void attn_decode_combine_##NAME##_d##D(const float* part, T* o,        \
                                                                 int splits) {                    \
        decode_combine<T, D>(part, o, splits);                                                    \
    }
DECODE(f16, __half, 64)
DECODE(f16, __half, 128)
DECODE(bf16, __nv_bfloat16, 64)
DECODE(bf16, __nv_bfloat16, 128)
