// Runs kernels/cuda/attention_mla_decode.cu on the CPU, to check its logic where there is no GPU:
// one std::thread per CUDA thread, a barrier for __syncthreads and one per warp for the
// warp-wide operations, which are emulated from the PTX ISA's fragment layouts (mma.sync
// m16n8k16 row.col with f32 accumulation, ldmatrix .x4 and .x4.trans, shfl.xor); static locals
// for __shared__, blocks one after another; fp16 as the compiler's _Float16, bf16 rounded to
// nearest even by hand. Compares every output with attention over the latent in double on the
// same rounded inputs (values the first 512 columns of each 576-wide key row, scale given) and
// exits 1 when one is unwritten or off by more than the harness's tolerance.
//   g++ -std=c++20 -O2 -pthread -o /tmp/mla_emu scripts/mla_cuda_on_cpu.cpp
//   /tmp/mla_emu bf16 BATCH HEADS KV_HEADS CONTEXT [WINDOW]
// Checks the kernel's indexing, fragment layouts, synchronization and algebra, not the GPU
// compiler or hardware.
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
#include <algorithm>
struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx;
dim3 blockIdx, gridDim;
std::barrier<>* bar;
std::barrier<>* warp_bar[32];
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(x)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define NEG_INF (-INFINITY)
#define MLA_ON_CPU
static void __syncthreads() { bar->arrive_and_wait(); }
using std::max;
using std::min;
typedef _Float16 __half;
struct __nv_bfloat16 { unsigned short bits; };
struct uint4 { unsigned x, y, z, w; };
static uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

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
template <typename T> static unsigned short bits_of(T x) {
    unsigned short b;
    memcpy(&b, &x, 2);
    return b;
}
template <typename T> static float from_bits(unsigned short b) {
    T x;
    memcpy(&x, &b, 2);
    return to_f32(x);
}

// Warp-wide exchange: every lane posts a value, all read, then the slots are free again.
static unsigned long long warp_slot[32][32][8];
static int warp_of() { return threadIdx.x / 32; }
static int lane_of() { return threadIdx.x % 32; }
static void warp_sync() { warp_bar[warp_of()]->arrive_and_wait(); }

static float __shfl_xor_sync(unsigned, float v, int sh) {
    const int w = warp_of(), l = lane_of();
    float out;
    memcpy(&warp_slot[w][l][0], &v, 4);
    warp_sync();
    memcpy(&out, &warp_slot[w][l ^ sh][0], 4);
    warp_sync();
    return out;
}

// ldmatrix .x4: lanes 8i..8i+7 address the eight rows (8 b16 each) of matrix i; lane l gets of
// matrix i the pair (row l/4, cols 2(l%4), +1), or with .trans (rows 2(l%4), +1 of col l/4).
static void ldsm(unsigned (&r)[4], const void* p, bool trans) {
    const int w = warp_of(), l = lane_of();
    warp_slot[w][l][0] = (unsigned long long)p;
    warp_sync();
    for (int i = 0; i < 4; ++i) {
        unsigned short lo, hi;
        if (!trans) {
            const unsigned short* row = (const unsigned short*)warp_slot[w][8 * i + l / 4][0];
            lo = row[2 * (l % 4)];
            hi = row[2 * (l % 4) + 1];
        } else {
            const unsigned short* r0 = (const unsigned short*)warp_slot[w][8 * i + 2 * (l % 4)][0];
            const unsigned short* r1 = (const unsigned short*)warp_slot[w][8 * i + 2 * (l % 4) + 1][0];
            lo = r0[l / 4];
            hi = r1[l / 4];
        }
        r[i] = lo | (unsigned)hi << 16;
    }
    warp_sync();
}
static void ldsm_x4(unsigned (&r)[4], const void* p) { ldsm(r, p, false); }
static void ldsm_x4_trans(unsigned (&r)[4], const void* p) { ldsm(r, p, true); }

template <typename T> static unsigned mla_pack2(float lo, float hi, T) {
    return bits_of(from_f32<T>(lo)) | (unsigned)bits_of(from_f32<T>(hi)) << 16;
}

// mma.sync m16n8k16 row.col, f32 accumulate. Lane l (g = l/4, t = l%4) holds A as
// a0 = A[g][2t..], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]; B as
// b0 = B[2t..][g], b1 = B[2t+8..][g]; C as c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t],
// c3 = C[g+8][2t+1].
template <typename T>
static void mla_mma(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1, T) {
    const int w = warp_of(), l = lane_of();
    for (int i = 0; i < 4; ++i) warp_slot[w][l][i] = a[i];
    warp_slot[w][l][4] = b0;
    warp_slot[w][l][5] = b1;
    warp_sync();
    float A[16][16], B[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane / 4, t = lane % 4;
        auto half = [&](int reg, int h) {
            return from_bits<T>((unsigned short)(warp_slot[w][lane][reg] >> (16 * h)));
        };
        for (int h = 0; h < 2; ++h) {
            A[g][2 * t + h] = half(0, h);
            A[g + 8][2 * t + h] = half(1, h);
            A[g][2 * t + 8 + h] = half(2, h);
            A[g + 8][2 * t + 8 + h] = half(3, h);
            B[2 * t + h][g] = half(4, h);
            B[2 * t + 8 + h][g] = half(5, h);
        }
    }
    warp_sync();
    const int g = l / 4, t = l % 4;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int e = 0; e < 4; ++e) {
        float acc = c[e];
        for (int k = 0; k < 16; ++k) acc += A[rows[e]][k] * B[k][cols[e]];
        c[e] = acc;
    }
}

#include "../kernels/cuda/attention_mla_decode.cu"

template <typename T> float round_to(float x) { return to_f32(from_f32<T>(x)); }

// The kernel's split rule (kernels/cuda/specs.rs, mla_decode_split).
static void split(int b, int hq, int hkv, int skv, int& splits, int& chunk) {
    const long groups = (hq / hkv + 15) / 16, units = std::max(1L, (long)b * hkv * groups);
    const long max_splits = std::max(1L, (skv + 63) / 64L);
    const long want = std::clamp((264 + units - 1) / units, 1L, max_splits);
    chunk = (int)(((skv + want - 1) / want + 31) / 32 * 32);
    splits = std::max(1, (skv + chunk - 1) / chunk);
}

template <typename T>
static void launch(dim3 grid, int threads, const std::function<void()>& body) {
    gridDim = grid;
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
static int run(int B, int hq, int hkv, int skv, int window, double tol,
               void (*partial)(const T*, const T*, float*, int, int, int, int, int, float),
               void (*combine)(const float*, T*, int)) {
    const int D = MLA_D, DV = MLA_DV;
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<T> q((size_t)B * hq * D), kv((size_t)B * hkv * skv * D);
    for (auto& x : q) x = from_f32<T>(u(rng));
    for (auto& x : kv) x = from_f32<T>(u(rng));
    const float scale = 1.f / std::sqrt(192.f);  // DeepSeek-V3: 1/√(qk_nope + rope)
    int splits, chunk;
    split(B, hq, hkv, skv, splits, chunk);
    std::vector<float> part((size_t)B * hq * splits * (DV + 2), NAN);
    std::vector<T> o((size_t)B * hq * DV, from_f32<T>(NAN));
    const int groups = (hq / hkv + 15) / 16;
    launch<T>({(unsigned)splits, (unsigned)(B * hkv * groups), 1}, 128, [&] {
        partial(q.data(), kv.data(), part.data(), hq, hkv, skv, chunk, window, scale);
    });
    launch<T>({(unsigned)(B * hq), 1, 1}, DV, [&] { combine(part.data(), o.data(), splits); });

    // Attention over the latent in double, on the same rounded inputs.
    double worst = 0, ref_max = 0;
    int unwritten = 0;
    const int first = window > 0 ? std::max(0, skv - window) : 0;
    for (int b = 0; b < B; ++b)
        for (int h = 0; h < hq; ++h) {
            const int hk = h / (hq / hkv);
            const T* qr = &q[((size_t)b * hq + h) * D];
            const T* base = &kv[((size_t)b * hkv + hk) * skv * D];
            std::vector<double> s(skv, -INFINITY);
            double mx = -INFINITY;
            for (int j = first; j < skv; ++j) {
                double d = 0;
                for (int c = 0; c < D; ++c) d += (double)to_f32(qr[c]) * to_f32(base[(size_t)j * D + c]);
                s[j] = d * scale;
                mx = std::max(mx, s[j]);
            }
            double sum = 0;
            for (int j = first; j < skv; ++j) sum += std::exp(s[j] - mx);
            for (int c = 0; c < DV; ++c) {
                double acc = 0;
                for (int j = first; j < skv; ++j)
                    acc += std::exp(s[j] - mx) / sum * to_f32(base[(size_t)j * D + c]);
                const float got = to_f32(o[((size_t)b * hq + h) * DV + c]);
                if (!std::isfinite(got)) ++unwritten;
                else worst = std::max(worst, std::fabs(got - acc));
                ref_max = std::max(ref_max, std::fabs(acc));
            }
        }
    const double rel = worst / std::max(ref_max, 1e-30);
    printf("batch %d heads %d/%d context %d window %d: %d splits of %d keys, max rel error %.3e "
           "(tolerance %.3e), %d unwritten\n",
           B, hq, hkv, skv, window, splits, chunk, rel, tol, unwritten);
    return unwritten == 0 && rel <= tol ? 0 : 1;
}

int main(int argc, char** argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s f16|bf16 BATCH HEADS KV_HEADS CONTEXT [WINDOW]\n", argv[0]);
        return 2;
    }
    const std::string dt = argv[1];
    const int B = atoi(argv[2]), hq = atoi(argv[3]), hkv = atoi(argv[4]), skv = atoi(argv[5]);
    const int window = argc > 6 ? atoi(argv[6]) : 0;
    // The harness's attention tolerance: 2 · (2^-23 · √max(D, context) · 4 + 2 · output ulp).
    auto tol = [&](double ulp) { return 2 * (std::pow(2, -23) * std::sqrt(std::max(576, skv)) * 4 + 2 * ulp); };
    if (dt == "f16")
        return run<__half>(B, hq, hkv, skv, window, tol(std::pow(2, -10)), attn_mla_decode_f16,
                           attn_mla_decode_combine_f16);
    return run<__nv_bfloat16>(B, hq, hkv, skv, window, tol(std::pow(2, -7)), attn_mla_decode_bf16,
                              attn_mla_decode_combine_bf16);
}
