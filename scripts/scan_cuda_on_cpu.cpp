// Runs kernels/cuda/scan_gated_delta.cu on the CPU, to check its logic where there is no GPU:
// one std::thread per CUDA thread, a barrier for __syncthreads, static locals for __shared__,
// blocks one after another; fp16 as the compiler's _Float16, bf16 rounded to nearest even by
// hand. Compares every output with the token-by-token recurrence in double on the same rounded
// inputs and exits 1 when one is unwritten or off by more than the tolerance of the harness.
//   g++ -std=c++20 -O2 -pthread -o /tmp/scan_emu scripts/scan_cuda_on_cpu.cpp
//   /tmp/scan_emu f16 BATCH HEADS SEQ DK DV [MIN_GATE]
// Checks the kernel's indexing, synchronization and algebra, not the GPU compiler or hardware.
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>
#include <algorithm>
#include <cstring>
#include <string>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx;
dim3 blockIdx;
std::barrier<>* bar;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(x)
#define __shared__ static
static void __syncthreads() { bar->arrive_and_wait(); }
using std::min;
typedef _Float16 __half;
struct __nv_bfloat16 { unsigned short bits; };
static inline float to_f32(float x) { return x; }
static inline float to_f32(__half x) { return (float)x; }
static inline float to_f32(__nv_bfloat16 x) {
    unsigned u = (unsigned)x.bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
template <typename T> T from_f32(float x);
template <> float from_f32<float>(float x) { return x; }
template <> __half from_f32<__half>(float x) { return (__half)x; }
template <> __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return __nv_bfloat16{(unsigned short)(u >> 16)};
}
#include "../kernels/cuda/scan_gated_delta.cu"

/// Rounds to the element type and back, as the harness rounds inputs before a run.
template <typename T> float round_to(float x) { return to_f32(from_f32<T>(x)); }

template <typename T>
int run(int B, int H, int seq, int dk, int dv, float amin, double eps_out,
        void (*kernel)(const T*, const T*, const T*, const T*, const T*, T*, int, int, int, int)) {

    int bh = B * H;
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> q(bh * seq * dk), k(q.size()), v(bh * seq * dv), a(bh * seq), b(bh * seq);
    for (auto& x : q) x = u(rng);
    for (size_t t = 0; t < (size_t)bh * seq; ++t) {
        double n = 0;
        for (int i = 0; i < dk; ++i) { k[t * dk + i] = u(rng); n += k[t * dk + i] * k[t * dk + i]; }
        for (int i = 0; i < dk; ++i) k[t * dk + i] /= std::sqrt(n);
    }
    for (auto& x : v) x = u(rng);
    for (auto& x : a) x = amin + (1 - amin) * 0.5f * (u(rng) + 1);
    for (auto& x : b) x = 0.5f + 0.45f * u(rng);
    for (auto* t : {&q, &k, &v, &a, &b})
        for (auto& x : *t) x = round_to<T>(x);
    auto dev = [](const std::vector<float>& x) {
        std::vector<T> d(x.size());
        for (size_t i = 0; i < x.size(); ++i) d[i] = from_f32<T>(x[i]);
        return d;
    };
    auto dq = dev(q), dk_ = dev(k), dv_ = dev(v), da = dev(a), db = dev(b);
    size_t out_n = (size_t)bh * seq * dv + (size_t)bh * dk * dv;
    std::vector<T> dout(out_n, from_f32<T>(NAN));
    std::barrier<> br(SCAN_THREADS);
    bar = &br;
    for (int y = 0; y < bh; ++y)
        for (int x = 0; x < (dv + SCAN_BV - 1) / SCAN_BV; ++x) {
            blockIdx.x = x; blockIdx.y = y;
            std::vector<std::thread> ts;
            for (int t = 0; t < SCAN_THREADS; ++t)
                ts.emplace_back([&, t] {
                    threadIdx.x = t;
                    kernel(dq.data(), dk_.data(), dv_.data(), da.data(), db.data(), dout.data(), bh, seq, dk, dv);
                });
            for (auto& t : ts) t.join();
        }
    std::vector<float> out(out_n);
    for (size_t i = 0; i < out_n; ++i) out[i] = to_f32(dout[i]);
    // The recurrence in double.
    std::vector<double> ref(out_n, 0);
    for (int h = 0; h < bh; ++h) {
        std::vector<double> S(dk * dv, 0), ks(dv);
        for (int t = 0; t < seq; ++t) {
            size_t tok = (size_t)h * seq + t;
            std::fill(ks.begin(), ks.end(), 0);
            for (int i = 0; i < dk; ++i) for (int j = 0; j < dv; ++j) ks[j] += k[tok * dk + i] * S[i * dv + j];
            for (int i = 0; i < dk; ++i) for (int j = 0; j < dv; ++j)
                S[i * dv + j] = a[tok] * (S[i * dv + j] - b[tok] * k[tok * dk + i] * ks[j]) + b[tok] * k[tok * dk + i] * v[tok * dv + j];
            for (int j = 0; j < dv; ++j) { double o = 0; for (int i = 0; i < dk; ++i) o += q[tok * dk + i] * S[i * dv + j]; ref[tok * dv + j] = o; }
        }
        for (int e = 0; e < dk * dv; ++e) ref[(size_t)bh * seq * dv + (size_t)h * dk * dv + e] = S[e];
    }
    double scale = 0, worst = 0; size_t nans = 0;
    for (size_t i = 0; i < out_n; ++i) scale = std::max(scale, std::fabs(ref[i]));
    for (size_t i = 0; i < out_n; ++i) {
        if (!std::isfinite(out[i])) { ++nans; continue; }
        worst = std::max(worst, std::fabs(out[i] - ref[i]) / scale);
    }
    // The harness's tolerance (op_tolerance of a scan): 2 (4·2⁻²³·√(seq·max(dk, dv)) + 2·eps_out).
    double tol = 2 * (4 * std::ldexp(1.0, -23) * std::sqrt((double)seq * std::max(dk, dv)) + 2 * eps_out);
    printf("b%d h%d seq%d dk%d dv%d: max rel err %.3g (tolerance %.3g), unwritten %zu of %zu\n", B,
           H, seq, dk, dv, worst, tol, nans, out_n);
    return nans > 0 || worst > tol;
}

int main(int argc, char** argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: %s f32|f16|bf16 BATCH HEADS SEQ DK DV [MIN_GATE]\n", argv[0]);
        return 2;
    }
    int B = atoi(argv[2]), H = atoi(argv[3]), seq = atoi(argv[4]), dk = atoi(argv[5]), dv = atoi(argv[6]);
    float amin = argc > 7 ? atof(argv[7]) : 0.9f;
    std::string t = argv[1];
    if (t == "f32") return run<float>(B, H, seq, dk, dv, amin, std::ldexp(1.0, -22), scan_gated_delta_f32);
    if (t == "f16") return run<__half>(B, H, seq, dk, dv, amin, std::ldexp(1.0, -10), scan_gated_delta_f16);
    if (t == "bf16") return run<__nv_bfloat16>(B, H, seq, dk, dv, amin, std::ldexp(1.0, -7), scan_gated_delta_bf16);
    fprintf(stderr, "unknown type %s\n", argv[1]);
    return 2;
}
