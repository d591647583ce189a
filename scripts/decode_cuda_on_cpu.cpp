// Runs kernels/cuda/attention_decode.cu (split-KV decode and its merge) on the CPU, to check its
// logic where there is no GPU: one std::thread per CUDA thread, a barrier for __syncthreads and
// one per warp for shfl.xor, static locals for __shared__, blocks one after another; fp16 as the
// compiler's _Float16, bf16 rounded to nearest even by hand. The split (keys per block and
// splits) comes from the command line, as the spec's launch computes it (tests/gpu/
// decode_on_cpu.rs). Compares every output with attention in double on the same rounded inputs
// and exits 1 when one is unwritten or off by more than the harness's tolerance.
//   g++ -std=c++20 -O2 -pthread -o /tmp/decode_emu scripts/decode_cuda_on_cpu.cpp
//   /tmp/decode_emu f16|bf16 D BATCH HEADS KV_HEADS CONTEXT WINDOW CHUNK SPLITS
// Checks the kernel's indexing, split bounds, synchronization and merge, not the GPU compiler or
// hardware.
// The kernel reads 16-bit arrays through uint4 and __half2 as CUDA allows; C++ calls that
// aliasing, so keep GCC from optimizing on it.
#pragma GCC optimize("no-strict-aliasing")
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx;
dim3 blockIdx, gridDim, blockDim;
std::barrier<>* bar;
std::barrier<>* warp_bar[32];
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __shared__ static
#define NEG_INF (-INFINITY)
static void __syncthreads() { bar->arrive_and_wait(); }
using std::max;
using std::min;
typedef _Float16 __half;
struct __nv_bfloat16 { unsigned short bits; };
struct __half2 { __half x, y; };
struct __nv_bfloat162 { __nv_bfloat16 x, y; };
struct float2 { float x, y; };
struct uint4 { unsigned x, y, z, w; };

static float to_f32(float x) { return x; }
static float to_f32(__half x) { return (float)x; }
static float to_f32(__nv_bfloat16 x) {
    unsigned u = (unsigned)x.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
template <typename T> T from_f32(float x);
template <> __half from_f32<__half>(float x) { return (__half)x; }
template <> __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return __nv_bfloat16{(unsigned short)((u >> 16) | 0x40)};
    u += 0x7fff + ((u >> 16) & 1);
    return __nv_bfloat16{(unsigned short)(u >> 16)};
}
static float2 __half22float2(__half2 h) { return {(float)h.x, (float)h.y}; }
static float2 __bfloat1622float2(__nv_bfloat162 h) { return {to_f32(h.x), to_f32(h.y)}; }
#define __expf(x) std::exp((float)(x))

// Warp-wide exchange: every lane posts a value, all read, then the slots are free again.
static float warp_slot[32][32];
static void warp_sync() { warp_bar[threadIdx.x / 32]->arrive_and_wait(); }
static float __shfl_xor_sync(unsigned, float v, int sh) {
    const int w = threadIdx.x / 32, l = threadIdx.x % 32;
    warp_slot[w][l] = v;
    warp_sync();
    const float out = warp_slot[w][l ^ sh];
    warp_sync();
    return out;
}

#include "../kernels/cuda/attention_decode.cu"

static void launch(dim3 grid, int threads, const std::function<void()>& body) {
    gridDim = grid;
    blockDim = {(unsigned)threads, 1, 1};
    std::barrier<> b(threads);
    bar = &b;
    for (int w = 0; w < threads / 32; ++w) warp_bar[w] = new std::barrier<>(32);
    for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) {
            blockIdx = {x, y, 1};
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    threadIdx = {(unsigned)t, 1, 1};
                    body();
                });
            for (auto& t : ts) t.join();
        }
    for (int w = 0; w < threads / 32; ++w) delete warp_bar[w];
}


template <typename T>
static int run(int D, int B, int hq, int hkv, int skv, int window, int chunk, int splits, double tol,
               void (*partial)(const T*, const T*, const T*, float*, int, int, int, int, int, float),
               void (*combine)(const float*, T*, int)) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<T> q((size_t)B * hq * D), k((size_t)B * hkv * skv * D), v(k.size());
    for (auto& x : q) x = from_f32<T>(u(rng));
    for (auto& x : k) x = from_f32<T>(u(rng));
    for (auto& x : v) x = from_f32<T>(u(rng));
    const float scale = 1.f / std::sqrt((float)D);
    std::vector<float> part((size_t)B * hq * splits * (D + 2), NAN);
    std::vector<T> o((size_t)B * hq * D, from_f32<T>(NAN));
    launch({(unsigned)splits, (unsigned)(B * hq), 1}, 128, [&] {
        partial(q.data(), k.data(), v.data(), part.data(), hq, hkv, skv, chunk, window, scale);
    });
    launch({(unsigned)(B * hq), 1, 1}, D, [&] { combine(part.data(), o.data(), splits); });

    double worst = 0, ref_max = 0;
    int unwritten = 0;
    const int first = window > 0 ? std::max(0, skv - window) : 0;
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < hq; ++h) {
            const int hk = h / (hq / hkv);
            const T* qr = &q[((size_t)b * hq + h) * D];
            const size_t base = ((size_t)b * hkv + hk) * skv * D;
            std::vector<double> s(skv, -INFINITY);
            double mx = -INFINITY;
            for (int j = first; j < skv; ++j) {
                double d = 0;
                for (int c = 0; c < D; ++c) d += (double)to_f32(qr[c]) * to_f32(k[base + (size_t)j * D + c]);
                s[j] = d * scale;
                mx = std::max(mx, s[j]);
            }
            double sum = 0;
            for (int j = first; j < skv; ++j) sum += std::exp(s[j] - mx);
            for (int c = 0; c < D; ++c) {
                double acc = 0;
                for (int j = first; j < skv; ++j)
                    acc += std::exp(s[j] - mx) / sum * to_f32(v[base + (size_t)j * D + c]);
                const float got = to_f32(o[((size_t)b * hq + h) * D + c]);
                if (!std::isfinite(got)) ++unwritten;
                else worst = std::max(worst, std::fabs(got - acc));
                ref_max = std::max(ref_max, std::fabs(acc));
            }
        }
    const double rel = worst / std::max(ref_max, 1e-30);
    printf("d %d batch %d heads %d/%d context %d window %d: %d splits of %d keys, max rel error "
           "%.3e (tolerance %.3e), %d unwritten\n",
           D, B, hq, hkv, skv, window, splits, chunk, rel, tol, unwritten);
    return unwritten == 0 && rel <= tol ? 0 : 1;
}

int main(int argc, char** argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: %s f16|bf16 D BATCH HEADS KV_HEADS CONTEXT WINDOW CHUNK SPLITS\n", argv[0]);
        return 2;
    }
    const std::string dt = argv[1];
    const int D = atoi(argv[2]), B = atoi(argv[3]), hq = atoi(argv[4]), hkv = atoi(argv[5]);
    const int skv = atoi(argv[6]), window = atoi(argv[7]), chunk = atoi(argv[8]), splits = atoi(argv[9]);
    // The harness's attention tolerance: 2 · (2^-23 · √max(D, context) · 4 + 2 · output ulp).
    auto tol = [&](double ulp) { return 2 * (std::pow(2, -23) * std::sqrt(std::max(D, skv)) * 4 + 2 * ulp); };
    if (dt == "f16") {
        if (D == 64)
            return run<__half>(D, B, hq, hkv, skv, window, chunk, splits, tol(std::pow(2, -10)),
                               attn_decode_f16_d64, attn_decode_combine_f16_d64);
        return run<__half>(D, B, hq, hkv, skv, window, chunk, splits, tol(std::pow(2, -10)),
                           attn_decode_f16_d128, attn_decode_combine_f16_d128);
    }
    if (D == 64)
        return run<__nv_bfloat16>(D, B, hq, hkv, skv, window, chunk, splits, tol(std::pow(2, -7)),
                                  attn_decode_bf16_d64, attn_decode_combine_bf16_d64);
    return run<__nv_bfloat16>(D, B, hq, hkv, skv, window, chunk, splits, tol(std::pow(2, -7)),
                              attn_decode_bf16_d128, attn_decode_combine_bf16_d128);
}
