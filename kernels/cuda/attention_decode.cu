// Decode attention: one new query token per (batch, head) against a long KV cache, as serving
// systems run it. The cache is split across blocks (split-KV, "flash-decoding") so that a batch
// of a few sequences still fills the GPU: each block reduces its slice of keys to a partial
// (max, sum, output), and a second kernel merges the partials. Memory-bound by design: expect a
// large fraction of the HBM bandwidth at long contexts.
// Layout: Q [b, hq, 1, D], K/V [b, hkv, skv, D], O [b, hq, 1, D]; partials f32
// [b·hq, splits, D + 2]. Grid (splits, b·hq), block 128 (4 warps); combine: grid b·hq, block D.

#define WARPS 4

template <typename T, int D>
__device__ void decode_partial(const T* __restrict__ q, const T* __restrict__ k,
                               const T* __restrict__ v, float* __restrict__ part, int hq,
                               int hkv, int skv, int chunk, int window, float scale) {
    const int split = blockIdx.x, splits = gridDim.x, bh = blockIdx.y;
    const int b = bh / hq, h = bh % hq, hk = h / (hq / hkv);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int PER = D / 32;  // dims per lane
    const int pos = skv - 1;
    const int first = window > 0 ? max(0, pos + 1 - window) : 0;
    const int j_begin = max(first, split * chunk), j_end = min(skv, (split + 1) * chunk);

    float qv[PER];
    const T* qr = q + (size_t)bh * D;
    for (int e = 0; e < PER; ++e) qv[e] = to_f32(qr[lane * PER + e]) * scale;
    const T* kb = k + ((size_t)b * hkv + hk) * skv * D;
    const T* vb = v + ((size_t)b * hkv + hk) * skv * D;

    float m = NEG_INF, l = 0.f, acc[PER] = {};
    for (int j = j_begin + warp; j < j_end; j += WARPS) {
        const T* kr = kb + (size_t)j * D + lane * PER;
        float dot = 0.f;
        for (int e = 0; e < PER; ++e) dot += qv[e] * to_f32(kr[e]);
        for (int sh = 16; sh > 0; sh /= 2) dot += __shfl_xor_sync(0xffffffff, dot, sh);
        const float mn = fmaxf(m, dot);
        const float corr = __expf(m - mn), p = __expf(dot - mn);
        l = l * corr + p;
        const T* vr = vb + (size_t)j * D + lane * PER;
        for (int e = 0; e < PER; ++e) acc[e] = acc[e] * corr + p * to_f32(vr[e]);
        m = mn;
    }
    // Merge the 4 warps through shared memory.
    __shared__ float wm[WARPS], wl[WARPS], wacc[WARPS][D];
    if (lane == 0) { wm[warp] = m; wl[warp] = l; }
    for (int e = 0; e < PER; ++e) wacc[warp][lane * PER + e] = acc[e];
    __syncthreads();
    float* out = part + ((size_t)bh * splits + split) * (D + 2);
    if (warp == 0) {
        float mm = NEG_INF;
        for (int w = 0; w < WARPS; ++w) mm = fmaxf(mm, wm[w]);
        float ll = 0.f;
        float o[PER] = {};
        for (int w = 0; w < WARPS; ++w) {
            float f = wm[w] == NEG_INF ? 0.f : __expf(wm[w] - mm);
            ll += wl[w] * f;
            for (int e = 0; e < PER; ++e) o[e] += wacc[w][lane * PER + e] * f;
        }
        for (int e = 0; e < PER; ++e) out[lane * PER + e] = o[e];
        if (lane == 0) { out[D] = mm; out[D + 1] = ll; }
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
