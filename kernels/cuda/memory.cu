// The memory-bound ops of a transformer block, one thread per element (per rotated pair for
// rotary, one block per row for RMSNorm), computing in f32: each reads and writes its tensors
// once, so it is bound by memory bandwidth. Names end in the element type: _f32, _f16, _bf16.

// RMSNorm forward: y = x / sqrt(mean(x²) + eps) · w. One block of 256 threads per row; warp
// shuffles, then one value per warp through shared memory, reduce the sum of squares.
template <typename T>
__device__ void rmsnorm(const T* x, const T* w, T* y, int rows, int cols, float eps) {
    __shared__ float warp_sums[8];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const T* xr = x + (size_t)row * cols;
    T* yr = y + (size_t)row * cols;
    float sum = 0.f;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = to_f32(xr[c]);
        sum = fmaf(v, v, sum);
    }
    for (int s = 16; s > 0; s /= 2) sum += __shfl_xor_sync(0xffffffff, sum, s);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
    __syncthreads();
    float total = 0.f;
    for (int i = 0; i < (int)blockDim.x / 32; ++i) total += warp_sums[i];
    const float inv = rsqrtf(total / cols + eps);
    for (int c = threadIdx.x; c < cols; c += blockDim.x)
        yr[c] = from_f32<T>(to_f32(xr[c]) * inv * to_f32(w[c]));
}

// SwiGLU over rows of [gate (cols) | up (cols)]: y = silu(gate) · up.
template <typename T>
__device__ void gated_silu(const T* gu, T* y, int rows, int cols) {
    const size_t n = (size_t)rows * cols;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t r = e / cols, c = e % cols;
        const float g = to_f32(gu[r * 2 * cols + c]), u = to_f32(gu[r * 2 * cols + cols + c]);
        y[e] = from_f32<T>(g / (1.f + __expf(-g)) * u);
    }
}

template <typename T>
__device__ void residual_add(const T* a, const T* b, T* y, long long n) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x)
        y[e] = from_f32<T>(to_f32(a[e]) + to_f32(b[e]));
}

// Rotary embedding, rotate-half convention: in each head of head_dim columns the pair
// (i, i + head_dim/2) turns by pos · theta^(−2i/head_dim), pos = row mod seq_len. The first
// `cols` columns of each input row (in_row elements apart) go to output rows out_row apart, so a
// block rotates Q and K out of its QKV projection and leaves V where it is.
template <typename T>
__device__ void rotary(const T* x, T* y, int rows, int cols, int head_dim, int seq_len,
                       int in_row, int out_row, float theta) {
    const int half = head_dim / 2, pairs = cols / 2;
    const size_t n = (size_t)rows * pairs;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const int row = (int)(e / pairs), q = (int)(e % pairs);
        const int i = q % half, c0 = (q / half) * head_dim + i, c1 = c0 + half;
        const float pos = (float)(row % seq_len);
        const float angle = pos * powf(theta, -2.f * i / head_dim);
        float sn, cs;
        sincosf(angle, &sn, &cs);
        const float x0 = to_f32(x[(size_t)row * in_row + c0]);
        const float x1 = to_f32(x[(size_t)row * in_row + c1]);
        y[(size_t)row * out_row + c0] = from_f32<T>(x0 * cs - x1 * sn);
        y[(size_t)row * out_row + c1] = from_f32<T>(x1 * cs + x0 * sn);
    }
}

#define MEMORY_OPS(NAME, T)                                                                       \
    extern "C" __global__ void __launch_bounds__(256)                                            \
        rmsnorm_##NAME(const T* x, const T* w, T* y, int rows, int cols, float eps) {            \
        rmsnorm<T>(x, w, y, rows, cols, eps);                                                     \
    }                                                                                             \
    extern "C" __global__ void gated_silu_##NAME(const T* gu, T* y, int rows, int cols) {       \
        gated_silu<T>(gu, y, rows, cols);                                                         \
    }                                                                                             \
    extern "C" __global__ void residual_add_##NAME(const T* a, const T* b, T* y, long long n) {  \
        residual_add<T>(a, b, y, n);                                                              \
    }                                                                                             \
    extern "C" __global__ void rotary_##NAME(const T* x, T* y, int rows, int cols, int head_dim, \
                                             int seq_len, int in_row, int out_row, float theta) { \
        rotary<T>(x, y, rows, cols, head_dim, seq_len, in_row, out_row, theta);                   \
    }
MEMORY_OPS(f32, float)
MEMORY_OPS(f16, __half)
MEMORY_OPS(bf16, __nv_bfloat16)
