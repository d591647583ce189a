// Memory-bound kernels only the transformer block runs (the composition check), beside those of
// memory.cu: QK-norm (Qwen3, Gemma 3), an RMSNorm over each query and key head read in place
// from the QKV projection's output (rows `in_row` apart, the value heads skipped) and written
// contiguously [tokens, (q_heads + kv_heads) · head_dim] for rotary, one block per (token,
// head), query heads with the first head_dim weights and key heads with the next; and GeGLU
// (Gemma), gelu(gate) · up with GELU's tanh form, one element per thread in a grid-stride loop.
// f32 math whatever the storage type. Bound by memory bandwidth.

template <typename T>
__device__ void qk_norm(const T* x, const T* w, T* y, int rows, int head_dim, int heads,
                        int q_heads, int in_row, float eps) {
    __shared__ float warp_sums[8];
    const int row = blockIdx.x;
    if (row >= rows) return;
    const int token = row / heads, head = row % heads;
    const T* xr = x + (size_t)token * in_row + (size_t)head * head_dim;
    const T* wr = w + (head < q_heads ? 0 : head_dim);
    T* yr = y + (size_t)row * head_dim;
    float sum = 0.f;
    for (int c = threadIdx.x; c < head_dim; c += blockDim.x) {
        const float v = to_f32(xr[c]);
        sum = fmaf(v, v, sum);
    }
    for (int s = 16; s > 0; s /= 2) sum += __shfl_xor_sync(0xffffffff, sum, s);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = sum;
    __syncthreads();
    float total = 0.f;
    for (int i = 0; i < (int)blockDim.x / 32; ++i) total += warp_sums[i];
    const float inv = rsqrtf(total / head_dim + eps);
    for (int c = threadIdx.x; c < head_dim; c += blockDim.x)
        yr[c] = from_f32<T>(to_f32(xr[c]) * inv * to_f32(wr[c]));
}

template <typename T>
__device__ void gated_gelu(const T* gu, T* y, int rows, int cols) {
    const size_t n = (size_t)rows * cols;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t r = e / cols, c = e % cols;
        const float g = to_f32(gu[r * 2 * cols + c]), u = to_f32(gu[r * 2 * cols + cols + c]);
        const float z = 0.7978845608028654f * (g + 0.044715f * g * g * g);  // √(2/π)·(g + 0.044715 g³)
        y[e] = from_f32<T>(0.5f * g * (1.f + tanhf(z)) * u);
    }
}

#define BLOCK_OPS(NAME, T)                                                                        \
    extern "C" __global__ void qk_norm_##NAME(const T* x, const T* w, T* y, int rows,            \
                                              int head_dim, int heads, int q_heads, int in_row,  \
                                              float eps) {                                        \
        qk_norm<T>(x, w, y, rows, head_dim, heads, q_heads, in_row, eps);                         \
    }                                                                                             \
    extern "C" __global__ void gated_gelu_##NAME(const T* gu, T* y, int rows, int cols) {       \
        gated_gelu<T>(gu, y, rows, cols);                                                         \
    }
BLOCK_OPS(f16, __half)
BLOCK_OPS(bf16, __nv_bfloat16)
