// Runs kernels/cuda/matmul_fp32_simt.cu on the CPU, to check its logic where there is no GPU:
// one std::thread per CUDA thread of a block, a barrier for __syncthreads, static locals for
// __shared__, the blocks of the launch's grid one after another (each thread walks them all in
// the same order, with a barrier between blocks so one block's shared memory is never written
// while the previous one still reads it).
// A, B and C each end flush against an inaccessible page, so a read or write past the end of any
// of them stops the run; every float4 access, global or shared, is checked to be 16-byte aligned;
// C is poisoned with NaN. Compares every output with A·B in double on the same float inputs,
// normwise with the harness's fp32 matmul tolerance, and exits 1 on an unwritten or wrong output.
//   g++ -std=c++20 -O2 -pthread -o /tmp/sgemm_emu scripts/sgemm_cuda_on_cpu.cpp
//   /tmp/sgemm_emu ENTRY M N K BATCH GRID_X GRID_Y GRID_Z THREADS [SEED]
// Checks the kernel's indexing, edges, staging and synchronization, not the GPU compiler or
// hardware.
#include <algorithm>
#include <barrier>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <sys/mman.h>
#include <thread>
#include <unistd.h>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx, blockIdx;
static std::barrier<>* block_barrier;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
static void __syncthreads() { block_barrier->arrive_and_wait(); }
struct alignas(16) float4 { float x, y, z, w; };
static float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

[[noreturn]] static void fail(const char* what) {
    fprintf(stdout, "FAIL: %s\n", what);
    fflush(stdout);
    std::_Exit(1);
}
#define SIMT_CHECK_ALIGN16(p) \
    if (reinterpret_cast<std::uintptr_t>(p) % 16) fail("a float4 access not 16-byte aligned")
#include "../kernels/cuda/matmul_fp32_simt.cu"

static void on_segv(int) {
    static const char msg[] = "FAIL: an access past the end of A, B or C (the guard page)\n";
    if (write(1, msg, sizeof msg - 1) < 0) {}
    std::_Exit(1);
}

// `n` floats ending exactly where an inaccessible page begins. The start stays 16-byte aligned
// whenever n is a multiple of 4, which is when the kernel may use float4s on it.
static float* guarded(size_t n) {
    const size_t page = sysconf(_SC_PAGESIZE), bytes = std::max<size_t>(n, 1) * sizeof(float);
    const size_t span = (bytes + page - 1) / page * page;
    auto* base = static_cast<unsigned char*>(
        mmap(nullptr, span + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (base == MAP_FAILED || mprotect(base + span, page, PROT_NONE) != 0) fail("mmap");
    return reinterpret_cast<float*>(base + span - n * sizeof(float));
}

int main(int argc, char** argv) {
    if (argc < 10) {
        fprintf(stderr, "usage: %s ENTRY M N K BATCH GRID_X GRID_Y GRID_Z THREADS [SEED]\n", argv[0]);
        return 2;
    }
    const std::string entry = argv[1];
    const int m = atoi(argv[2]), n = atoi(argv[3]), k = atoi(argv[4]), batch = atoi(argv[5]);
    const dim3 grid{(unsigned)atoi(argv[6]), (unsigned)atoi(argv[7]), (unsigned)atoi(argv[8])};
    const int threads = atoi(argv[9]);
    const unsigned seed = argc > 10 ? (unsigned)atoi(argv[10]) : 1;
    void (*kernel)(const float*, const float*, float*, int, int, int) = nullptr;
    if (entry == "matmul_fp32_simt") kernel = matmul_fp32_simt;
    if (entry == "matmul_fp32_simt_64") kernel = matmul_fp32_simt_64;
    if (!kernel) {
        fprintf(stderr, "%s: unknown entry %s\n", argv[0], argv[1]);
        return 2;
    }
    if (m < 1 || n < 1 || k < 1 || batch < 1 || threads < 1) {
        fprintf(stderr, "%s: M, N, K, BATCH and THREADS must be positive\n", argv[0]);
        return 2;
    }
    signal(SIGSEGV, on_segv);
    signal(SIGBUS, on_segv);

    const size_t alen = (size_t)batch * m * k, blen = (size_t)batch * k * n, clen = (size_t)batch * m * n;
    float *A = guarded(alen), *B = guarded(blen), *C = guarded(clen);
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1, 1);
    for (size_t i = 0; i < alen; ++i) A[i] = u(rng);
    for (size_t i = 0; i < blen; ++i) B[i] = u(rng);
    for (size_t i = 0; i < clen; ++i) C[i] = NAN;

    std::barrier<> bar(threads);
    block_barrier = &bar;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            threadIdx = {(unsigned)t, 0, 0};
            for (unsigned z = 0; z < grid.z; ++z)
                for (unsigned y = 0; y < grid.y; ++y)
                    for (unsigned x = 0; x < grid.x; ++x) {
                        blockIdx = {x, y, z};
                        kernel(A, B, C, m, n, k);
                        bar.arrive_and_wait();
                    }
        });
    for (auto& t : ts) t.join();

    double worst = 0, ref_max = 0;
    long unwritten = 0;
    for (int z = 0; z < batch; ++z)
        for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) {
                double acc = 0;
                for (int kk = 0; kk < k; ++kk)
                    acc += (double)A[((size_t)z * m + i) * k + kk] * B[((size_t)z * k + kk) * n + j];
                const double got = C[((size_t)z * m + i) * n + j];
                if (!std::isfinite(got)) ++unwritten;
                else worst = std::max(worst, std::fabs(got - acc));
                ref_max = std::max(ref_max, std::fabs(acc));
            }
    // The harness's fp32 tolerance (measure::harness::tolerance): 4·2⁻²³·√k + 2·2⁻²².
    const double tol = std::ldexp(1.0, -23) * std::sqrt((double)k) * 4 + 2 * std::ldexp(1.0, -22);
    const double rel = worst / std::max(ref_max, 1e-30);
    printf("%s m %d n %d k %d batch %d, grid %ux%ux%u: max rel error %.3e (tolerance %.3e), %ld unwritten\n",
           entry.c_str(), m, n, k, batch, grid.x, grid.y, grid.z, rel, tol, unwritten);
    return unwritten == 0 && rel <= tol ? 0 : 1;
}
