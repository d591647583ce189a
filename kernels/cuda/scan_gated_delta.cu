// Gated delta rule (Gated DeltaNet: Yang, Kautz and Hatamizadeh, "Gated Delta Networks: Improving
// Mamba2 with Delta Rule"), chunked: per (sequence, head) the state S (dk × dv) starts at zero and
// for each token t, with the key k_t L2-normalized by the caller, gate α_t in (0, 1] and
// β_t in (0, 1):
//     S_t = α_t (I − β_t k_t k_tᵀ) S_{t−1} + β_t k_t v_tᵀ,     o_t = S_tᵀ q_t.
// Chunks of C = 64 tokens run one after another, the state passed between them; inside a chunk
// the tokens are handled at once by the WY representation ("Parallelizing Linear Transformers
// with the Delta Rule over Sequence Length", Yang et al. 2024). With γ_r = α_1···α_r (from the
// chunk's start) and S₀ the entering state:
//     A_rj = β_r (γ_r/γ_j) k_r·k_j  (j < r),   T = (I + A)⁻¹          (the UT transform)
//     U = T (diag(β) V − diag(βγ) K S₀)                               (u_r = β_r(v_r − α_r S_{r−1}ᵀk_r))
//     O = diag(γ) Q S₀ + ((γ_r/γ_j) q_r·k_j, j ≤ r) U
//     S = γ_C S₀ + (diag(γ_C/γ) K)ᵀ U.
// Ratios of γ come from differences of log α summed in fp32, so none underflows; α = 0 is outside
// the domain. A block takes BV = 16 value columns of one head (columns evolve independently; A and
// T are recomputed per block), keeps its slice of S, T, and the chunk's right-hand side and U in
// shared memory (33.5 KiB, fp32), and reads q, k, v from global memory through the cache.
// Inputs q, k [bh, seq, dk], v [bh, seq, dv], α, β [bh, seq]; output o [bh, seq, dv], then the
// final state [bh, dk, dv]. dk up to 128. fp32 math whatever the storage type.
// Correct before fast: SIMT FMAs, no tensor cores yet; should reach a few tens of percent of the
// fp32 SIMT peak on the chunk products.

#define SCAN_C 64
#define SCAN_BV 16
#define SCAN_DK_MAX 128
#define SCAN_THREADS 128

template <typename T>
__device__ float dot_rows(const T* a, const T* b, int n) {
    float s = 0.f;
    for (int i = 0; i < n; ++i) s = fmaf(to_f32(a[i]), to_f32(b[i]), s);
    return s;
}

template <typename T>
__device__ void scan_gated_delta(const T* __restrict__ q, const T* __restrict__ k,
                                 const T* __restrict__ v, const T* __restrict__ gate,
                                 const T* __restrict__ beta, T* __restrict__ out, int bh_count,
                                 int seq, int dk, int dv) {
    __shared__ float S[SCAN_DK_MAX][SCAN_BV];
    __shared__ float Tm[SCAN_C][SCAN_C + 1];
    __shared__ float R[SCAN_C][SCAN_BV];
    __shared__ float U[SCAN_C][SCAN_BV];
    __shared__ float g[SCAN_C], b[SCAN_C];
    __shared__ float row_new[SCAN_C];

    const int bh = blockIdx.y, col0 = blockIdx.x * SCAN_BV, tid = threadIdx.x;
    const size_t tok_base = (size_t)bh * seq;
    for (int e = tid; e < dk * SCAN_BV; e += SCAN_THREADS) S[e / SCAN_BV][e % SCAN_BV] = 0.f;

    for (int start = 0; start < seq; start += SCAN_C) {
        const int n = min(SCAN_C, seq - start);
        const size_t t0 = tok_base + start;
        const T* kc = k + t0 * dk;
        const T* qc = q + t0 * dk;
        __syncthreads();
        if (tid < n) {
            g[tid] = logf(to_f32(gate[t0 + tid]));
            b[tid] = to_f32(beta[t0 + tid]);
        }
        __syncthreads();
        // log γ: a running sum over at most 64 terms, by one warp's lane 0.
        if (tid == 0)
            for (int r = 1; r < n; ++r) g[r] += g[r - 1];
        __syncthreads();

        // A (strictly lower), zero elsewhere.
        for (int e = tid; e < n * n; e += SCAN_THREADS) {
            const int r = e / n, j = e % n;
            Tm[r][j] = j < r ? b[r] * expf(g[r] - g[j]) * dot_rows(kc + (size_t)r * dk,
                                                                     kc + (size_t)j * dk, dk)
                             : 0.f;
        }
        __syncthreads();
        // T = (I + A)⁻¹ row by row: T_rm = −(A_rm + Σ_{m<j<r} A_rj T_jm); the diagonal is 1.
        for (int r = 1; r < n; ++r) {
            if (tid < r) {
                float s = Tm[r][tid];
                for (int j = tid + 1; j < r; ++j) s = fmaf(Tm[r][j], Tm[j][tid], s);
                row_new[tid] = -s;
            }
            __syncthreads();
            if (tid < r) Tm[r][tid] = row_new[tid];
            __syncthreads();
        }
        if (tid < n) Tm[tid][tid] = 1.f;

        // R = diag(β)(V − diag(γ) K S₀).
        for (int e = tid; e < n * SCAN_BV; e += SCAN_THREADS) {
            const int r = e / SCAN_BV, c = e % SCAN_BV, col = col0 + c;
            float rv = 0.f;
            if (col < dv) {
                const T* kr = kc + (size_t)r * dk;
                float ks = 0.f;
                for (int i = 0; i < dk; ++i) ks = fmaf(to_f32(kr[i]), S[i][c], ks);
                rv = b[r] * (to_f32(v[(t0 + r) * dv + col]) - expf(g[r]) * ks);
            }
            R[r][c] = rv;
        }
        __syncthreads();
        // U = T R (T lower triangular).
        for (int e = tid; e < n * SCAN_BV; e += SCAN_THREADS) {
            const int r = e / SCAN_BV, c = e % SCAN_BV;
            float u = 0.f;
            for (int m = 0; m <= r; ++m) u = fmaf(Tm[r][m], R[m][c], u);
            U[r][c] = u;
        }
        __syncthreads();
        // T is spent: its space takes the decayed causal scores (γ_r/γ_j) q_r·k_j, j ≤ r.
        for (int e = tid; e < n * n; e += SCAN_THREADS) {
            const int r = e / n, j = e % n;
            Tm[r][j] = j <= r ? expf(g[r] - g[j]) * dot_rows(qc + (size_t)r * dk,
                                                               kc + (size_t)j * dk, dk)
                              : 0.f;
        }
        __syncthreads();
        // O = diag(γ) Q S₀ + P U.
        for (int e = tid; e < n * SCAN_BV; e += SCAN_THREADS) {
            const int r = e / SCAN_BV, c = e % SCAN_BV, col = col0 + c;
            if (col >= dv) continue;
            const T* qr = qc + (size_t)r * dk;
            float qs = 0.f;
            for (int i = 0; i < dk; ++i) qs = fmaf(to_f32(qr[i]), S[i][c], qs);
            float o = expf(g[r]) * qs;
            for (int j = 0; j <= r; ++j) o = fmaf(Tm[r][j], U[j][c], o);
            out[(t0 + r) * dv + col] = from_f32<T>(o);
        }
        __syncthreads();
        // S = γ_n S₀ + Σ_j (γ_n/γ_j) k_j u_jᵀ.
        const float g_last = g[n - 1];
        for (int e = tid; e < dk * SCAN_BV; e += SCAN_THREADS) {
            const int i = e / SCAN_BV, c = e % SCAN_BV;
            float s = expf(g_last) * S[i][c];
            for (int j = 0; j < n; ++j)
                s = fmaf(expf(g_last - g[j]) * to_f32(kc[(size_t)j * dk + i]), U[j][c], s);
            S[i][c] = s;
        }
    }
    __syncthreads();
    T* state = out + (size_t)bh_count * seq * dv + (size_t)bh * dk * dv;
    for (int e = tid; e < dk * SCAN_BV; e += SCAN_THREADS) {
        const int i = e / SCAN_BV, c = e % SCAN_BV, col = col0 + c;
        if (col < dv) state[(size_t)i * dv + col] = from_f32<T>(S[i][c]);
    }
}

#define SCAN_GATED_DELTA(NAME, T)                                                               \
    extern "C" __global__ void __launch_bounds__(SCAN_THREADS) scan_gated_delta_##NAME(        \
        const T* q, const T* k, const T* v, const T* gate, const T* beta, T* out, int bh_count, \
        int seq, int dk, int dv) {                                                              \
        scan_gated_delta<T>(q, k, v, gate, beta, out, bh_count, seq, dk, dv);                   \
    }
SCAN_GATED_DELTA(f32, float)
SCAN_GATED_DELTA(f16, __half)
SCAN_GATED_DELTA(bf16, __nv_bfloat16)
