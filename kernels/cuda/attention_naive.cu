// Naive attention in three kernels, the textbook baseline: (1) S = scale·QKᵀ into a global f32
// matrix with causal/window masking, (2) row softmax in place, (3) O = P·V. The score matrix makes
// two round trips through memory, which is what the fused kernel avoids.
// Layout: Q [b, hq, sq, d], K/V [b, hkv, skv, d], S [b, hq, sq, skv] f32, O [b, hq, sq, d].
// Query i sits at position skv − sq + i; query head h reads kv head h / (hq / hkv).

#define MASKED (-3.0e38f)

template <typename T>
__device__ void scores(const T* q, const T* k, float* s, int hq, int hkv, int sq, int skv, int d,
                       int causal, int window, float scale) {
    int j = blockIdx.x * 16 + threadIdx.x;
    int i = blockIdx.y * 16 + threadIdx.y;
    int bh = blockIdx.z;
    if (i >= sq || j >= skv) return;
    int b = bh / hq, h = bh % hq, hk = h / (hq / hkv);
    int pos = skv - sq + i;
    bool visible = !causal || (j <= pos && (window == 0 || pos - j < window));
    float acc = MASKED;
    if (visible) {
        const T* qr = q + ((size_t)bh * sq + i) * d;
        const T* kr = k + (((size_t)b * hkv + hk) * skv + j) * d;
        float dot = 0.f;
        for (int c = 0; c < d; ++c) dot += to_f32(qr[c]) * to_f32(kr[c]);
        acc = dot * scale;
    }
    s[((size_t)bh * sq + i) * skv + j] = acc;
}

// One block of 256 threads per row.
extern "C" __global__ void attn_naive_softmax(float* s, int rows, int skv) {
    __shared__ float red[256];
    int row = blockIdx.x + blockIdx.y * 65535;
    if (row >= rows) return;
    float* r = s + (size_t)row * skv;
    float m = MASKED;
    for (int j = threadIdx.x; j < skv; j += 256) m = fmaxf(m, r[j]);
    red[threadIdx.x] = m;
    __syncthreads();
    for (int st = 128; st > 0; st /= 2) {
        if (threadIdx.x < st) red[threadIdx.x] = fmaxf(red[threadIdx.x], red[threadIdx.x + st]);
        __syncthreads();
    }
    m = red[0];
    __syncthreads();
    float sum = 0.f;
    for (int j = threadIdx.x; j < skv; j += 256) {
        float e = r[j] > MASKED ? __expf(r[j] - m) : 0.f;
        r[j] = e;
        sum += e;
    }
    red[threadIdx.x] = sum;
    __syncthreads();
    for (int st = 128; st > 0; st /= 2) {
        if (threadIdx.x < st) red[threadIdx.x] += red[threadIdx.x + st];
        __syncthreads();
    }
    float inv = 1.f / red[0];
    for (int j = threadIdx.x; j < skv; j += 256) r[j] *= inv;
}

template <typename T>
__device__ void pv(const float* s, const T* v, T* o, int hq, int hkv, int sq, int skv, int d) {
    int c = blockIdx.x * 16 + threadIdx.x;
    int i = blockIdx.y * 16 + threadIdx.y;
    int bh = blockIdx.z;
    if (c >= d || i >= sq) return;
    int b = bh / hq, h = bh % hq, hk = h / (hq / hkv);
    const float* sr = s + ((size_t)bh * sq + i) * skv;
    const T* vb = v + ((size_t)b * hkv + hk) * skv * d;
    float acc = 0.f;
    for (int j = 0; j < skv; ++j) acc += sr[j] * to_f32(vb[(size_t)j * d + c]);
    o[((size_t)bh * sq + i) * d + c] = from_f32<T>(acc);
}

#define NAIVE(NAME, T)                                                                            \
    extern "C" __global__ void attn_naive_scores_##NAME(const T* q, const T* k, float* s, int hq, \
                                                        int hkv, int sq, int skv, int d,         \
                                                        int causal, int window, float scale) {   \
        scores<T>(q, k, s, hq, hkv, sq, skv, d, causal, window, scale);                          \
    }                                                                                             \
    extern "C" __global__ void attn_naive_pv_##NAME(const float* s, const T* v, T* o, int hq,    \
                                                    int hkv, int sq, int skv, int d) {           \
        pv<T>(s, v, o, hq, hkv, sq, skv, d);                                                      \
    }
NAIVE(f16, __half)
NAIVE(bf16, __nv_bfloat16)
