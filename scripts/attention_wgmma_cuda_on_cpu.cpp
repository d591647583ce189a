// Runs kernels/cuda/attention_wgmma.cu on the CPU, to check its logic where there is no Hopper
// GPU: one std::thread per CUDA thread, CTAs one after another, TMA, mbarriers and the 128B
// swizzle from sm90_on_cpu.h (as wgmma_cuda_on_cpu.cpp describes them), and here:
//   - wgmma.mma_async m64nNk16 (executed at issue, so fence/commit/wait are no-ops), with the
//     warpgroup's descriptors checked to agree and decoded (start, LBO, SBO in 16-byte units,
//     128B swizzle), the operands read through the canonical layouts
//       K-major:  byte = start + (row % 8)·128 + (row / 8)·SBO + k·2
//       MN-major: byte = start + (n % 64)·2 + (n / 64)·LBO + (k % 8)·128 + (k / 8)·SBO
//     (then swizzled); A from registers (the m64nNk16 A fragment: thread lane of warp w holds
//     rows 16w + lane/4 (+8) and columns 2·(lane % 4) (+1, +8, +9), registers {(g, c), (g+8, c),
//     (g, c+8), (g+8, c+8)}, low half first); D by the accumulator fragment layout;
//   - __shfl_xor_sync: an exchange among the 32 threads of the warp.
// Q, K and V are seeded [batch, heads, len, d] tensors rounded to the type (Q spread wider, so
// the softmax is far from uniform and a wrong running maximum shows); O is poisoned with NaN
// and guarded past its end. Every output is compared with attention in double on the same
// rounded inputs (the mask as attention_flash.cu reads causal and window; a row that sees no key
// is 0), normwise with the harness's attention tolerance; exits 1 on an unwritten or wrong one.
//   g++ -std=c++20 -O2 -pthread -o /tmp/attn_emu scripts/attention_wgmma_cuda_on_cpu.cpp
//   /tmp/attn_emu ENTRY BATCH HQ HKV SQ SKV D CAUSAL WINDOW GRIDX GRIDY THREADS SMEM
//                 Q:D0 D1 D2 S1 S2 B0 B1 B2  K:(the same)  V:(the same)  O:BATCH HEAD ROW OFFSET
// Checks the kernel's indexing, descriptors, masking, softmax and pipeline against this reading
// of the PTX ISA, not the GPU compiler or hardware.
#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte aligned TmaMap parameters, by value
#pragma GCC optimize("no-strict-aliasing")  // 16-bit pairs moved through unsigned, as CUDA does
#include "sm90_on_cpu.h"

#define NEG_INF (-INFINITY)

static void reg_fence(unsigned&) {}

// ---- warp shuffles ----------------------------------------------------------------------------
static float shfl_val[12][32];
static std::barrier<>* warp_bars[12];
static float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    if (mask != 0xffffffffu) fail("a shuffle over part of a warp");
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    shfl_val[warp][lane] = v;
    warp_bars[warp]->arrive_and_wait();
    const float r = shfl_val[warp][lane ^ lane_mask];
    warp_bars[warp]->arrive_and_wait();
    return r;
}

// ---- wgmma --------------------------------------------------------------------------------------
template <typename T> static float read16(size_t a) {
    T h;
    memcpy(&h, &smem_buf[a], 2);
    return to_f32(h);
}
template <typename T> static float half_of(unsigned w, int hi) {
    T h;
    const unsigned short u = (unsigned short)(hi ? w >> 16 : w & 0xffff);
    memcpy(&h, &u, 2);
    return to_f32(h);
}

static float* wg_d[4][128];
static unsigned long long wg_desc_of[4][128][2];
static unsigned wg_a[4][128][4];

// B (16 × N) through its descriptor: K-major (n rows of 128 bytes) or MN-major.
template <typename T> static void read_b(std::vector<float>& b, unsigned long long db, int N, bool mn) {
    const Desc B = decode(db);
    b.assign(16 * N, 0);
    for (int n = 0; n < N; ++n)
        for (int k = 0; k < 16; ++k) {
            const size_t at = mn ? B.start + (n % 64) * 2 + (n / 64) * B.lbo + (k % 8) * 128 + (k / 8) * B.sbo
                                 : B.start + (n % 8) * 128 + (n / 8) * B.sbo + k * 2;
            check_smem(at, 2, "wgmma B");
            b[k * N + n] = read16<T>(swizzle128(at));
        }
}
// D += A·B into every thread's accumulator fragments.
static void accumulate(int wg, const std::vector<float>& a, const std::vector<float>& b, int N) {
    for (int t = 0; t < 128; ++t) {
        const int warp = t / 32, lane = t % 32;
        for (int i = 0; i < N / 2; ++i) {
            const int row = 16 * warp + lane / 4 + 8 * ((i / 2) % 2);
            const int col = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
            float acc = wg_d[wg][t][i];
            for (int k = 0; k < 16; ++k) acc += a[row * 16 + k] * b[k * N + col];
            wg_d[wg][t][i] = acc;
        }
    }
}

// m64n128k16, A and B from shared memory, both K-major.
template <typename T> static void wgmma_qk(float (&d)[64], unsigned long long da, unsigned long long db) {
    const int wg = threadIdx.x / 128, l = threadIdx.x % 128;
    wg_d[wg][l] = d;
    wg_desc_of[wg][l][0] = da;
    wg_desc_of[wg][l][1] = db;
    wgmma_bars[wg]->arrive_and_wait();
    if (l == 0) {
        for (int t = 1; t < 128; ++t)
            if (wg_desc_of[wg][t][0] != da || wg_desc_of[wg][t][1] != db)
                fail("the warpgroup's threads disagree on a wgmma descriptor");
        const Desc A = decode(da);
        static thread_local std::vector<float> a, b;
        a.assign(64 * 16, 0);
        for (int r = 0; r < 64; ++r)
            for (int k = 0; k < 16; ++k) {
                const size_t at = A.start + (r % 8) * 128 + (r / 8) * A.sbo + k * 2;
                check_smem(at, 2, "wgmma A");
                a[r * 16 + k] = read16<T>(swizzle128(at));
            }
        read_b<T>(b, db, 128, false);
        accumulate(wg, a, b, 128);
    }
    wgmma_bars[wg]->arrive_and_wait();
}

// m64nDk16, A from registers, B from shared memory MN-major (imm-trans-b = 1).
template <typename T, int D> static void wgmma_pv(float (&d)[D / 2], const unsigned (&ar)[4], unsigned long long db) {
    const int wg = threadIdx.x / 128, l = threadIdx.x % 128;
    wg_d[wg][l] = d;
    wg_desc_of[wg][l][1] = db;
    for (int i = 0; i < 4; ++i) wg_a[wg][l][i] = ar[i];
    wgmma_bars[wg]->arrive_and_wait();
    if (l == 0) {
        for (int t = 1; t < 128; ++t)
            if (wg_desc_of[wg][t][1] != db) fail("the warpgroup's threads disagree on a wgmma descriptor");
        static thread_local std::vector<float> a, b;
        a.assign(64 * 16, 0);
        for (int t = 0; t < 128; ++t) {
            const int row = 16 * (t / 32) + (t % 32) / 4, col = 2 * (t % 4);
            for (int r = 0; r < 4; ++r)
                for (int hi = 0; hi < 2; ++hi)
                    a[(row + 8 * (r % 2)) * 16 + col + 8 * (r / 2) + hi] = half_of<T>(wg_a[wg][t][r], hi);
        }
        read_b<T>(b, db, D, true);
        accumulate(wg, a, b, D);
    }
    wgmma_bars[wg]->arrive_and_wait();
}

struct TmaMap;
static void tma_load_3d(void* dst, const TmaMap* map, unsigned long long* bar, int c0, int c1, int c2);

#include "../kernels/cuda/attention_wgmma.cu"

static void tma_load_3d(void* dst, const TmaMap* map, unsigned long long* bar, int c0, int c1, int c2) {
    tma_load_emulated(dst, map, bar, c0, c1, c2);
}

// ---- the launch and the check -----------------------------------------------------------------
int main(int argc, char** argv) {
    if (argc != 14 + 24 + 4) {
        fprintf(stderr,
                "usage: %s ENTRY BATCH HQ HKV SQ SKV D CAUSAL WINDOW GRIDX GRIDY THREADS SMEM "
                "Q:(8) K:(8) V:(8) O:BATCH HEAD ROW OFFSET\n",
                argv[0]);
        return 2;
    }
    const std::string entry = argv[1];
    const int batch = atoi(argv[2]), hq = atoi(argv[3]), hkv = atoi(argv[4]);
    const int sq = atoi(argv[5]), skv = atoi(argv[6]), d = atoi(argv[7]);
    const int causal = atoi(argv[8]), window = atoi(argv[9]);
    const int gx = atoi(argv[10]), gy = atoi(argv[11]), threads = atoi(argv[12]);
    dyn_bytes = (unsigned)atoi(argv[13]);
    if (dyn_bytes + SMEM_OFFSET > sizeof smem_buf) fail("more dynamic shared memory than emulated");
    unsigned long long maps[3][8];
    for (int m = 0; m < 3; ++m)
        for (int i = 0; i < 8; ++i) maps[m][i] = strtoull(argv[14 + 8 * m + i], nullptr, 10);
    long long olay[4];
    for (int i = 0; i < 4; ++i) olay[i] = atoll(argv[38 + i]);
    const bool f16 = entry.find("_f16_") != std::string::npos;
    const float scale = 1.0f / std::sqrt((float)d);

    // Inputs [batch, heads, len, d], values rounded to the type, as bytes.
    std::mt19937 rng(7);
    auto fill = [&](size_t n, float spread, std::vector<u8>& bytes, std::vector<float>& vals) {
        std::uniform_real_distribution<float> u(-spread, spread);
        bytes.resize(n * 2);
        vals.resize(n);
        for (size_t i = 0; i < n; ++i) {
            const float x = u(rng);
            if (f16) {
                __half h = (__half)x;
                memcpy(&bytes[i * 2], &h, 2);
                vals[i] = (float)h;
            } else {
                __nv_bfloat16 h = from_f32<__nv_bfloat16>(x);
                memcpy(&bytes[i * 2], &h, 2);
                vals[i] = to_f32(h);
            }
        }
    };
    std::vector<u8> Q, K, V;
    std::vector<float> qv, kv, vv;
    fill((size_t)batch * hq * sq * d, 6.0f, Q, qv);
    fill((size_t)batch * hkv * skv * d, 1.0f, K, kv);
    fill((size_t)batch * hkv * skv * d, 1.0f, V, vv);
    const size_t olen = (size_t)batch * hq * sq * d, guard = 4096;
    std::vector<unsigned short> O(olen + guard, 0x7fff);  // NaN in either type

    TmaMap tq, tk, tv;
    auto encode = [&](TmaMap& t, const std::vector<u8>& buf, const unsigned long long (&v)[8]) {
        EmuMap e{buf.data(), 2, {v[0], v[1], v[2]}, {v[3], v[4]}, {v[5], v[6], v[7]}};
        static_assert(sizeof(EmuMap) <= sizeof(TmaMap), "the emulated map fits a CUtensorMap");
        memset(&t, 0, sizeof t);
        memcpy(&t, &e, sizeof e);
    };
    encode(tq, Q, maps[0]);
    encode(tk, K, maps[1]);
    encode(tv, V, maps[2]);
    AttnLayout lay{};
    lay.o = Strided{olay[0], olay[1], olay[2], olay[3]};

    std::function<void()> body;
#define ENTRY(NAME, T)                                                                              \
    if (entry == #NAME)                                                                             \
        body = [&] { NAME(tq, tk, tv, (T*)O.data(), hq, hkv, sq, skv, causal, window, scale, lay); };
    ENTRY(attn_wgmma_f16_d64, __half)
    ENTRY(attn_wgmma_f16_d128, __half)
    ENTRY(attn_wgmma_bf16_d64, __nv_bfloat16)
    ENTRY(attn_wgmma_bf16_d128, __nv_bfloat16)
    if (!body) fail("unknown entry point");

    gridDim = {(unsigned)gx, (unsigned)gy, 1};
    std::barrier<> bb(threads);
    block_bar = &bb;
    for (int i = 0; i < 4; ++i) {
        wg_bars[i] = new std::barrier<>(128);
        wgmma_bars[i] = new std::barrier<>(128);
    }
    for (int i = 0; i < 12; ++i) warp_bars[i] = new std::barrier<>(32);
    if (threads > 12 * 32) fail("more threads than emulated warps");
    for (int y = 0; y < gy; ++y)
        for (int x = 0; x < gx; ++x) {
            blockIdx = {(unsigned)x, (unsigned)y, 0};
            memset(smem_buf, 0xA5, sizeof smem_buf);  // stale data, as a GPU leaves it
            mbars.clear();
            std::vector<std::thread> ts;
            for (int t = 0; t < threads; ++t)
                ts.emplace_back([&, t] {
                    threadIdx = {(unsigned)t, 0, 0};
                    body();
                });
            for (auto& t : ts) t.join();
            for (auto& [a, b] : mbars)
                if (b.pending != b.expected || b.tx != 0) fail("an mbarrier left mid-phase at the CTA's end");
        }

    // Attention in double on the same rounded values.
    auto out = [&](unsigned short bits) -> double {
        if (f16) {
            __half h;
            memcpy(&h, &bits, 2);
            return (double)(float)h;
        }
        return to_f32(__nv_bfloat16{bits});
    };
    double worst = 0, ref_max = 0;
    long unwritten = 0;
    std::vector<double> s(skv), acc(d);
    for (int b = 0; b < batch; ++b)
        for (int h = 0; h < hq; ++h) {
            const int hk = h / (hq / hkv);
            const float* qh = &qv[((size_t)b * hq + h) * sq * d];
            const float* kh = &kv[((size_t)b * hkv + hk) * skv * d];
            const float* vh = &vv[((size_t)b * hkv + hk) * skv * d];
            for (int r = 0; r < sq; ++r) {
                const long long pos = (long long)skv - sq + r;
                double mx = -INFINITY;
                for (int j = 0; j < skv; ++j) {
                    const bool seen = !causal || (j <= pos && (window == 0 || pos - j < window));
                    double dot = 0;
                    for (int c = 0; c < d; ++c) dot += (double)qh[(size_t)r * d + c] * kh[(size_t)j * d + c];
                    s[j] = seen ? dot * scale : -INFINITY;
                    mx = std::max(mx, s[j]);
                }
                std::fill(acc.begin(), acc.end(), 0.0);
                double sum = 0;
                if (mx > -INFINITY)
                    for (int j = 0; j < skv; ++j) {
                        const double p = std::exp(s[j] - mx);
                        sum += p;
                        for (int c = 0; c < d; ++c) acc[c] += p * vh[(size_t)j * d + c];
                    }
                for (int c = 0; c < d; ++c) {
                    const double want = sum > 0 ? acc[c] / sum : 0.0;
                    const size_t at = (size_t)(b * olay[0] + h * olay[1] + r * olay[2] + olay[3] + c);
                    const double got = out(O[at]);
                    if (!std::isfinite(got)) ++unwritten;
                    else worst = std::max(worst, std::fabs(got - want));
                    ref_max = std::max(ref_max, std::fabs(want));
                }
            }
        }
    for (size_t i = olen; i < olen + guard; ++i)
        if (O[i] != 0x7fff) fail("a write past the end of O");
    // The harness's attention tolerance: 2 · tolerance(dtype, max(d, kv_len)).
    const double ulp = f16 ? std::pow(2, -10) : std::pow(2, -7);
    const double tol = 2 * (std::pow(2, -23) * std::sqrt((double)std::max(d, skv)) * 4 + 2 * ulp);
    const double rel = worst / std::max(ref_max, 1e-30);
    printf("%s batch %d heads %d/%d q %d kv %d causal %d window %d: max rel error %.3e (tolerance %.3e), %ld unwritten\n",
           entry.c_str(), batch, hq, hkv, sq, skv, causal, window, rel, tol, unwritten);
    return unwritten == 0 && rel <= tol ? 0 : 1;
}
