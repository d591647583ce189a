// Naive fp32 SIMT matmul: one thread per output, A's row and B's column read from global memory
// (through L1/L2). The baseline; expect a few percent of the fp32 peak.
// C[z] = A[z]·B[z], row-major: A m×k, B k×n, C m×n; grid (ceil(n/16), ceil(m/16), batch).

extern "C" __global__ void matmul_fp32_naive(const float* __restrict__ a,
                                             const float* __restrict__ b,
                                             float* __restrict__ c, int m, int n, int k) {
    int col = blockIdx.x * 16 + threadIdx.x;
    int row = blockIdx.y * 16 + threadIdx.y;
    size_t z = blockIdx.z;
    if (row >= m || col >= n) return;
    const float* ar = a + z * m * k + (size_t)row * k;
    const float* bc = b + z * k * n + col;
    float acc = 0.f;
    for (int i = 0; i < k; ++i) acc += ar[i] * bc[(size_t)i * n];
    c[z * m * n + (size_t)row * n + col] = acc;
}
