// Runs kernels/cuda/matmul_wgmma.cu on the CPU, to check its logic where there is no Hopper GPU:
// one std::thread per CUDA thread, CTAs one after another, and the sm_90a machinery emulated
// from the PTX ISA's definitions:
//   - TMA (cp.async.bulk.tensor.3d, tile mode): the box at the given coordinates of a 3-D
//     tensor map (extents, byte strides, box as the Rust spec encodes them, passed on the command
//     line), zeros outside the extents, written row after row into shared memory with the
//     128-byte swizzle applied to the shared address (Swizzle<3,4,3>: address bits 4-6 ^= bits
//     7-9), then complete_tx of the box's bytes on the mbarrier;
//   - mbarrier: arrival count, transaction count and phase; try_wait.parity(P) returns once the
//     phase of parity P has completed (a fresh barrier's "previous" phase, parity 1, counts as
//     complete); a wait of more than 60 s is reported as a deadlock;
//   - wgmma.mma_async (executed at issue, so fence/commit/wait are no-ops): the warpgroup's
//     descriptors are decoded (start, LBO, SBO in 16-byte units, layout type 1 = 128B swizzle,
//     base offset 0) and A (K-major) and B (K-major, or MN-major with imm-trans-b) are read
//     through the canonical layouts
//       K-major:  byte = start + (row % 8)·128 + (row / 8)·SBO + k·elem
//       MN-major: byte = start + (n % 64)·elem + (n / 64)·LBO + (k % 8)·128 + (k / 8)·SBO
//     (then swizzled), and D is added into each thread's registers by the accumulator fragment
//     layout: d[i] is row 16·warp + lane/4 + 8·((i/2) % 2), column 8·(i/4) + 2·(lane % 4) + i % 2;
//   - setmaxnreg, fences: no-ops; bar.sync id, 128: a barrier per id.
// The dynamic shared memory is placed 16 bytes past a 1024-byte boundary (the kernel must round
// up itself) and every emulated access is checked to stay inside it; C is poisoned with NaN and
// guarded past its end. Compares every output with A·B in double on the same rounded inputs, with
// the harness's matmul tolerance, and exits 1 on an unwritten or wrong output.
//   g++ -std=c++20 -O2 -pthread -o /tmp/wgmma_emu scripts/wgmma_cuda_on_cpu.cpp
//   /tmp/wgmma_emu ENTRY M N K BATCH GRID THREADS SMEM  A0 A1 A2 AS1 AS2 AB0 AB1 AB2  (B the same)
// Checks the kernel's indexing, descriptors, swizzle, pipeline and epilogue against this reading
// of the PTX ISA, not the GPU compiler or hardware.
#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte aligned TmaMap parameters, by value
// The kernel moves 16-bit outputs through unsigned and uint4 as CUDA allows; C++ calls that
// aliasing, so keep GCC from optimizing on it.
#pragma GCC optimize("no-strict-aliasing")
#include "sm90_on_cpu.h"

struct TmaMap;
static void tma_load_3d(void* dst, const TmaMap* map, unsigned long long* bar, int c0, int c1, int c2);


struct WF16;
struct WBF16;
struct WE4M3;
template <typename Ty, int BN>
static void wgmma_tile(float (&d)[BN / 2], unsigned long long da, unsigned long long db);

#include "../kernels/cuda/matmul_wgmma.cu"

static void tma_load_3d(void* dst, const TmaMap* map, unsigned long long* bar, int c0, int c1, int c2) {
    tma_load_emulated(dst, map, bar, c0, c1, c2);
}

// ---- wgmma ----------------------------------------------------------------------------------
static float fp8_e4m3(u8 b) {
    const int s = b >> 7, e = (b >> 3) & 15, f = b & 7;
    if (e == 15 && f == 7) return NAN;
    const float v = e == 0 ? std::ldexp((float)f, -9) : std::ldexp(1.0f + f / 8.0f, e - 7);
    return s ? -v : v;
}
template <typename Ty> static float read_elem(size_t a);
template <> float read_elem<WF16>(size_t a) {
    __half h;
    memcpy(&h, &smem_buf[a], 2);
    return (float)h;
}
template <> float read_elem<WBF16>(size_t a) {
    __nv_bfloat16 h;
    memcpy(&h, &smem_buf[a], 2);
    return to_f32(h);
}
template <> float read_elem<WE4M3>(size_t a) { return fp8_e4m3(smem_buf[a]); }


static float* wg_d[4][128];
static unsigned long long wg_desc_of[4][128][2];

template <typename Ty, int BN>
static void wgmma_tile(float (&d)[BN / 2], unsigned long long da, unsigned long long db) {
    const int wg = threadIdx.x / 128, l = threadIdx.x % 128;
    wg_d[wg][l] = d;
    wg_desc_of[wg][l][0] = da;
    wg_desc_of[wg][l][1] = db;
    wgmma_bars[wg]->arrive_and_wait();
    if (l == 0) {
        for (int t = 1; t < 128; ++t)
            if (wg_desc_of[wg][t][0] != da || wg_desc_of[wg][t][1] != db)
                fail("the warpgroup's threads disagree on a wgmma descriptor");
        const int K = Ty::KSTEP, E = Ty::E;
        const Desc A = decode(da), B = decode(db);
        static thread_local std::vector<float> a, b;
        a.assign(64 * K, 0);
        b.assign(K * BN, 0);
        for (int r = 0; r < 64; ++r)
            for (int k = 0; k < K; ++k) {
                const size_t at = A.start + (r % 8) * 128 + (r / 8) * A.sbo + k * E;
                check_smem(at, E, "wgmma A");
                a[r * K + k] = read_elem<Ty>(swizzle128(at));
            }
        for (int n = 0; n < BN; ++n)
            for (int k = 0; k < K; ++k) {
                const size_t at = Ty::B_MN
                                      ? B.start + (n % 64) * E + (n / 64) * B.lbo + (k % 8) * 128 + (k / 8) * B.sbo
                                      : B.start + (n % 8) * 128 + (n / 8) * B.sbo + k * E;
                check_smem(at, E, "wgmma B");
                b[k * BN + n] = read_elem<Ty>(swizzle128(at));
            }
        for (int t = 0; t < 128; ++t) {
            const int warp = t / 32, lane = t % 32;
            for (int i = 0; i < BN / 2; ++i) {
                const int row = 16 * warp + lane / 4 + 8 * ((i / 2) % 2);
                const int col = 8 * (i / 4) + 2 * (lane % 4) + i % 2;
                float acc = wg_d[wg][t][i];
                for (int k = 0; k < K; ++k) acc += a[row * K + k] * b[k * BN + col];
                wg_d[wg][t][i] = acc;
            }
        }
    }
    wgmma_bars[wg]->arrive_and_wait();
}

// ---- the launch and the check ---------------------------------------------------------------
// e4m3 bytes of values in about [-2, 2] (no NaN).
static u8 e4m3_near(float x) {
    u8 best = 0;
    float dist = INFINITY;
    for (int b = 0; b < 256; ++b) {
        const float v = fp8_e4m3((u8)b);
        if (std::isfinite(v) && std::fabs(v - x) < dist) {
            dist = std::fabs(v - x);
            best = (u8)b;
        }
    }
    return best;
}

int main(int argc, char** argv) {
    if (argc != 25) {
        fprintf(stderr,
                "usage: %s ENTRY M N K BATCH GRID THREADS SMEM  A:D0 D1 D2 S1 S2 B0 B1 B2  "
                "B:D0 D1 D2 S1 S2 B0 B1 B2\n",
                argv[0]);
        return 2;
    }
    const std::string entry = argv[1];
    const int m = atoi(argv[2]), n = atoi(argv[3]), k = atoi(argv[4]), batch = atoi(argv[5]);
    const int grid = atoi(argv[6]), threads = atoi(argv[7]);
    dyn_bytes = (unsigned)atoi(argv[8]);
    if (dyn_bytes + SMEM_OFFSET > sizeof smem_buf) fail("more dynamic shared memory than emulated");
    unsigned long long am[8], bm[8];
    for (int i = 0; i < 8; ++i) {
        am[i] = strtoull(argv[9 + i], nullptr, 10);
        bm[i] = strtoull(argv[17 + i], nullptr, 10);
    }
    const bool fp8 = entry.find("e4m3") != std::string::npos;
    const bool f16 = entry.find("_f16_") != std::string::npos;
    const int E = fp8 ? 1 : 2;
    // Inputs: values rounded to the type, as bytes; A m×k, B k×n (fp8: stored n×k).
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<u8> A((size_t)batch * m * k * E), B((size_t)batch * k * n * E);
    std::vector<float> av((size_t)batch * m * k), bv((size_t)batch * k * n);  // bv: [z][k][n]
    auto put = [&](std::vector<u8>& buf, size_t at, float x) -> float {
        if (fp8) {
            const u8 b = e4m3_near(2 * x);
            buf[at] = b;
            return fp8_e4m3(b);
        }
        if (f16) {
            __half h = (__half)x;
            memcpy(&buf[at * 2], &h, 2);
            return (float)h;
        }
        __nv_bfloat16 h = from_f32<__nv_bfloat16>(x);
        memcpy(&buf[at * 2], &h, 2);
        return to_f32(h);
    };
    for (size_t i = 0; i < av.size(); ++i) av[i] = put(A, i, u(rng));
    for (int z = 0; z < batch; ++z)
        for (int kk = 0; kk < k; ++kk)
            for (int j = 0; j < n; ++j) {
                const size_t at = fp8 ? ((size_t)z * n + j) * k + kk : ((size_t)z * k + kk) * n + j;
                bv[((size_t)z * k + kk) * n + j] = put(B, at, u(rng));
            }
    // C poisoned with NaN, 4096 guard values past its end.
    const size_t clen = (size_t)batch * m * n, guard = 4096;
    std::vector<unsigned short> C(clen + guard, 0x7fff);

    TmaMap ta, tb;
    auto encode = [&](TmaMap& t, const std::vector<u8>& buf, const unsigned long long (&v)[8]) {
        EmuMap e{buf.data(), (unsigned long long)E, {v[0], v[1], v[2]}, {v[3], v[4]}, {v[5], v[6], v[7]}};
        static_assert(sizeof(EmuMap) <= sizeof(TmaMap), "the emulated map fits a CUtensorMap");
        memset(&t, 0, sizeof t);
        memcpy(&t, &e, sizeof e);
    };
    encode(ta, A, am);
    encode(tb, B, bm);

    std::function<void()> body;
    if (entry == "wgmma_f16_m128n256") body = [&] { wgmma_f16_m128n256(ta, tb, (__half*)C.data(), m, n, k, batch); };
    else if (entry == "wgmma_bf16_m128n256") body = [&] { wgmma_bf16_m128n256(ta, tb, (__nv_bfloat16*)C.data(), m, n, k, batch); };
    else if (entry == "wgmma_e4m3_m128n256") body = [&] { wgmma_e4m3_m128n256(ta, tb, (__nv_bfloat16*)C.data(), m, n, k, batch); };
    else if (entry == "wgmma_f16_m64n128") body = [&] { wgmma_f16_m64n128(ta, tb, (__half*)C.data(), m, n, k, batch); };
    else if (entry == "wgmma_bf16_m64n128") body = [&] { wgmma_bf16_m64n128(ta, tb, (__nv_bfloat16*)C.data(), m, n, k, batch); };
    else if (entry == "wgmma_e4m3_m64n128") body = [&] { wgmma_e4m3_m64n128(ta, tb, (__nv_bfloat16*)C.data(), m, n, k, batch); };
    else fail("unknown entry point");

    gridDim = {(unsigned)grid, 1, 1};
    std::barrier<> bb(threads);
    block_bar = &bb;
    for (int i = 0; i < 4; ++i) {
        wg_bars[i] = new std::barrier<>(128);
        wgmma_bars[i] = new std::barrier<>(128);
    }
    for (int x = 0; x < grid; ++x) {
        blockIdx = {(unsigned)x, 0, 0};
        memset(smem_buf, 0xA5, sizeof smem_buf);  // stale data, as a GPU leaves it
        mbars.clear();
        std::vector<std::thread> ts;
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&, t] {
                threadIdx = {(unsigned)t, 0, 0};
                body();
            });
        for (auto& t : ts) t.join();
        // Every barrier ends between phases: no arrival or byte left pending.
        for (auto& [a, b] : mbars)
            if (b.pending != b.expected || b.tx != 0) fail("an mbarrier left mid-phase at the CTA's end");
    }

    // A·B in double on the same rounded values.
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
    for (int z = 0; z < batch; ++z)
        for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) {
                double acc = 0;
                for (int kk = 0; kk < k; ++kk)
                    acc += (double)av[((size_t)z * m + i) * k + kk] * bv[((size_t)z * k + kk) * n + j];
                const double got = out(C[((size_t)z * m + i) * n + j]);
                if (!std::isfinite(got)) ++unwritten;
                else worst = std::max(worst, std::fabs(got - acc));
                ref_max = std::max(ref_max, std::fabs(acc));
            }
    for (size_t i = clen; i < clen + guard; ++i)
        if (C[i] != 0x7fff) fail("a write past the end of C");
    const double ulp = fp8 || !f16 ? std::pow(2, -7) : std::pow(2, -10);
    const double tol = std::pow(2, -23) * std::sqrt((double)k) * 4 + 2 * ulp;
    const double rel = worst / std::max(ref_max, 1e-30);
    printf("%s m %d n %d k %d batch %d, grid %d: max rel error %.3e (tolerance %.3e), %ld unwritten\n",
           entry.c_str(), m, n, k, batch, grid, rel, tol, unwritten);
    return unwritten == 0 && rel <= tol ? 0 : 1;
}
