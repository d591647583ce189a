// The sm_90a machinery the CPU emulations of the Hopper kernels share (scripts/*_on_cpu.cpp
// that include a kernel with WGMMA_ON_CPU defined): CUDA's built-in names, 16-bit types, the
// emulated shared memory with its bounds check and 128B swizzle, mbarriers, TMA tile loads,
// named barriers and wgmma descriptor decoding, each as the PTX ISA defines it (see
// wgmma_cuda_on_cpu.cpp for the description). One translation unit includes it.
#pragma once
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
thread_local dim3 threadIdx;
dim3 blockIdx, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __grid_constant__
#define __align__(n) __attribute__((aligned(n)))
#define WGMMA_ON_CPU
using std::max;
using std::min;
typedef unsigned char u8;
typedef _Float16 __half;
struct __nv_bfloat16 { unsigned short bits; };
struct uint4 { unsigned x, y, z, w; };
static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static float to_f32(float x) { return x; }
static float to_f32(__half x) { return (float)x; }
static float to_f32(__nv_bfloat16 x) {
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
    if ((u & 0x7fffffff) > 0x7f800000) return __nv_bfloat16{(unsigned short)((u >> 16) | 0x40)};
    u += 0x7fff + ((u >> 16) & 1);
    return __nv_bfloat16{(unsigned short)(u >> 16)};
}

[[noreturn]] static void fail(const char* what) {
    fprintf(stdout, "FAIL: %s\n", what);
    fflush(stdout);
    std::_Exit(1);
}

// ---- Shared memory --------------------------------------------------------------------------
alignas(1024) static u8 smem_buf[(256 << 10) + 1024];
static const unsigned SMEM_OFFSET = 16;  // the dynamic base, off the 1024-byte grid
static unsigned dyn_bytes;
static u8* wg_smem() { return smem_buf + SMEM_OFFSET; }
static unsigned wg_dynamic_smem() { return dyn_bytes; }
static size_t __cvta_generic_to_shared(const void* p) {
    const u8* q = (const u8*)p;
    if (q < smem_buf || q >= smem_buf + sizeof smem_buf) fail("a shared address outside shared memory");
    return (size_t)(q - smem_buf);
}
// An access of `n` bytes at shared address `a` must lie inside the launch's dynamic memory.
static void check_smem(size_t a, size_t n, const char* who) {
    if (a < SMEM_OFFSET || a + n > SMEM_OFFSET + dyn_bytes) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s touches shared bytes %zu..%zu outside the %u dynamic bytes", who,
                 a, a + n, dyn_bytes);
        fail(msg);
    }
}
static size_t swizzle128(size_t a) { return a ^ (((a >> 7) & 7) << 4); }

// ---- mbarrier -------------------------------------------------------------------------------
struct Mbar {
    int expected = 0, pending = 0;
    long long tx = 0;
    unsigned completed = 0;  // phases completed
};
static std::mutex mbar_mu;
static std::condition_variable mbar_cv;
static std::map<size_t, Mbar> mbars;

static Mbar& mbar_of(unsigned long long* bar) {
    const size_t a = __cvta_generic_to_shared(bar);
    check_smem(a, 8, "an mbarrier");
    if (a % 8) fail("an mbarrier not 8-byte aligned");
    auto it = mbars.find(a);
    if (it == mbars.end()) fail("an mbarrier used before mbarrier.init");
    return it->second;
}
static void mbar_settle(Mbar& b) {
    if (b.pending < 0) fail("more arrivals than the mbarrier's count");
    if (b.pending == 0 && b.tx == 0) {
        b.completed++;
        b.pending = b.expected;
        mbar_cv.notify_all();
    }
}
static void mbar_init(unsigned long long* bar, unsigned count) {
    std::lock_guard<std::mutex> l(mbar_mu);
    const size_t a = __cvta_generic_to_shared(bar);
    check_smem(a, 8, "mbarrier.init");
    Mbar& b = mbars[a];
    b = Mbar{(int)count, (int)count, 0, 0};
}
static void mbar_fence_init() {}
static void mbar_expect_tx(unsigned long long* bar, unsigned bytes) {
    std::lock_guard<std::mutex> l(mbar_mu);
    Mbar& b = mbar_of(bar);
    b.tx += bytes;
    b.pending--;
    mbar_settle(b);
}
static void mbar_complete_tx(unsigned long long* bar, unsigned bytes) {
    std::lock_guard<std::mutex> l(mbar_mu);
    Mbar& b = mbar_of(bar);
    b.tx -= bytes;
    if (b.tx < 0) fail("a TMA completed more bytes than expect_tx announced");
    mbar_settle(b);
}
static void mbar_arrive(unsigned long long* bar) {
    std::lock_guard<std::mutex> l(mbar_mu);
    Mbar& b = mbar_of(bar);
    b.pending--;
    mbar_settle(b);
}
static void mbar_wait(unsigned long long* bar, unsigned parity) {
    std::unique_lock<std::mutex> l(mbar_mu);
    Mbar& b = mbar_of(bar);
    // The current phase is number `completed`; the phase of parity P has completed when the
    // current one's parity differs from P.
    if (!mbar_cv.wait_for(l, std::chrono::seconds(60), [&] { return (b.completed & 1) != parity; }))
        fail("deadlock: an mbarrier wait never completed");
}

// ---- TMA ------------------------------------------------------------------------------------
// The emulator's tensor map, stored in the kernel's TmaMap words.
struct EmuMap {
    const u8* base;
    unsigned long long elem, dims[3], strides[2], box[3];
};
// The TMA load of a box (tile mode, 128B swizzle), from the emulated map in a TmaMap's words.
static void tma_load_emulated(void* dst, const void* map, unsigned long long* bar, int c0, int c1, int c2) {
    EmuMap m;
    memcpy(&m, map, sizeof m);
    const size_t d = __cvta_generic_to_shared(dst);
    if (d % 128) fail("a TMA destination not 128-byte aligned");
    const unsigned long long row_bytes = m.box[0] * m.elem;
    if (row_bytes != 128) fail("a 128B-swizzled box whose rows are not 128 bytes");
    const int c[3] = {c0, c1, c2};
    for (unsigned long long i2 = 0; i2 < m.box[2]; ++i2)
        for (unsigned long long i1 = 0; i1 < m.box[1]; ++i1)
            for (unsigned long long i0 = 0; i0 < m.box[0]; ++i0) {
                const long long x[3] = {c[0] + (long long)i0, c[1] + (long long)i1, c[2] + (long long)i2};
                bool inside = true;
                for (int j = 0; j < 3; ++j) inside &= x[j] >= 0 && x[j] < (long long)m.dims[j];
                const size_t a = d + ((i2 * m.box[1] + i1) * m.box[0] + i0) * m.elem;
                check_smem(a, m.elem, "a TMA load");
                const size_t s = swizzle128(a);
                for (unsigned long long e = 0; e < m.elem; ++e)
                    smem_buf[s + e] = inside ? m.base[x[2] * m.strides[1] + x[1] * m.strides[0] +
                                                      x[0] * m.elem + e]
                                             : 0;
            }
    mbar_complete_tx(bar, (unsigned)(m.box[0] * m.box[1] * m.box[2] * m.elem));
}

// ---- wgmma descriptors -----------------------------------------------------------------------
struct Desc {
    size_t start, lbo, sbo;
};
static Desc decode(unsigned long long x) {
    if ((x >> 62) != 1) fail("a descriptor whose layout type is not 128B swizzle");
    if ((x >> 49) & 7) fail("a descriptor with a base offset");
    return Desc{(size_t)(x & 0x3FFF) << 4, (size_t)((x >> 16) & 0x3FFF) << 4,
                (size_t)((x >> 32) & 0x3FFF) << 4};
}

// ---- warpgroup-wide operations ----------------------------------------------------------------
static std::barrier<>* block_bar;
static std::barrier<>* wg_bars[4];     // bar.sync ids
static std::barrier<>* wgmma_bars[4];  // each warpgroup's wgmma exchange
static void __syncthreads() { block_bar->arrive_and_wait(); }
static void wg_bar_sync(int id) {
    if (id < 1 || id > 3) fail("a named barrier id out of range");
    wg_bars[id]->arrive_and_wait();
}
template <int N> static void setmaxnreg_dec() {}
template <int N> static void setmaxnreg_inc() {}
static void wgmma_fence() {}
static void wgmma_commit() {}
template <int N> static void wgmma_wait() {}
static void acc_fence(float&) {}
