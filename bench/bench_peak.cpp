// The arithmetic ceilings of this CPU, measured rather than estimated from the nominal clock: the
// throughput of the instructions harvit's kernels are made of, independent accumulator chains per
// thread (16 zmm of the 32, 12 ymm of the 16: enough to cover their latency, few enough that every
// chain stays in a register), on 1 thread and on every thread at once:
//   fp32 FMA    vfmadd231ps ymm (AVX2) and zmm (AVX-512)         -> GFLOP/s (2 per lane)
//   int8 dot    vpdpbusd ymm (AVX-VNNI) and zmm (AVX512-VNNI)    -> G multiply-adds/s (4 per lane)
//   bf16 dot    vdpbf16ps zmm (AVX512-BF16)                      -> G multiply-adds/s (2 per lane)
// An instruction the CPU (or HARVIT_ISA) lacks is reported as skipped, naming the ISA. The
// figures are the denominators of "% of peak" in docs/performance.md: a batch-1 forward of the seed
// ViT is 60.4 M multiply-adds, so its floor at a given rate is 60.4 M / rate.
//   bench_peak [--seconds S]   prints one JSON line per instruction and thread count.
#include <immintrin.h>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "bench_common.h"
#include "core/cpu.h"

namespace {

constexpr int kZmmChains = 16, kYmmChains = 12;
constexpr long kInner = 1 << 14;  // instructions per chain between clock reads

// Each kernel runs its chains for `iters` x kInner steps and returns a value
// derived from every accumulator (so the compiler keeps them all).
__attribute__((target("avx2,fma"))) double fma_ymm(long iters) {
  constexpr int kChains = kYmmChains;
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(float(i));
  __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(0.001f);
  for (long it = 0; it < iters * kInner; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    __asm__ volatile("" : "+x"(x), "+x"(y));
  }
  __m256 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm256_add_ps(s, acc[i]);
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"))) double fma_zmm(long iters) {
  constexpr int kChains = kZmmChains;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
  for (long it = 0; it < iters * kInner; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    __asm__ volatile("" : "+v"(x), "+v"(y));
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];  // (GCC 12's _mm512_reduce_add_ps warns about its own header)
  _mm512_store_ps(lanes, s);
  return lanes[0];
}

// vpdpbusd as in-place asm (as in the int8 kernels: around the builtin GCC 12 copies each
// accumulator), on named variables: an array element as an asm operand stays in memory.
#define HARVIT_CHAINS_12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define HARVIT_CHAINS_16(X) HARVIT_CHAINS_12(X) X(12) X(13) X(14) X(15)

__attribute__((target("avx2,avxvnni"))) double dpbusd_ymm(long iters) {
  static_assert(kYmmChains == 12);
#define DECL(i) __m256i c##i = _mm256_set1_epi32(i);
#define STEP(i) __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(c##i) : "x"(a), "x"(w));
#define SUM(i) s = _mm256_add_epi32(s, c##i);
  HARVIT_CHAINS_12(DECL)
  __m256i a = _mm256_set1_epi32(0x01020304), w = _mm256_set1_epi32(0x01ff01ff);
  for (long it = 0; it < iters * kInner; ++it) {
    HARVIT_CHAINS_12(STEP)
    __asm__ volatile("" : "+x"(a), "+x"(w));
  }
  __m256i s = _mm256_setzero_si256();
  HARVIT_CHAINS_12(SUM)
#undef DECL
#undef STEP
#undef SUM
  return _mm256_extract_epi32(s, 0);
}

__attribute__((target("avx512f,avx512vnni"))) double dpbusd_zmm(long iters) {
  static_assert(kZmmChains == 16);
#define DECL(i) __m512i c##i = _mm512_set1_epi32(i);
#define STEP(i) __asm__("vpdpbusd %2, %1, %0" : "+v"(c##i) : "v"(a), "v"(w));
#define SUM(i) s = _mm512_add_epi32(s, c##i);
  HARVIT_CHAINS_16(DECL)
  __m512i a = _mm512_set1_epi32(0x01020304), w = _mm512_set1_epi32(0x01ff01ff);
  for (long it = 0; it < iters * kInner; ++it) {
    HARVIT_CHAINS_16(STEP)
    __asm__ volatile("" : "+v"(a), "+v"(w));
  }
  __m512i s = _mm512_setzero_si512();
  HARVIT_CHAINS_16(SUM)
#undef DECL
#undef STEP
#undef SUM
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  return lanes[0];
}

__attribute__((target("avx512f,avx512bf16"))) double dpbf16_zmm(long iters) {
  constexpr int kChains = kZmmChains;
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), w = (__m512bh)_mm512_set1_epi32(0x3a803a80);
  for (long it = 0; it < iters * kInner; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, w);
    __asm__ volatile("" : "+v"(a), "+v"(w));
  }
  __m512 s = acc[0];
  for (int i = 1; i < kChains; ++i) s = _mm512_add_ps(s, acc[i]);
  alignas(64) float lanes[16];  // (GCC 12's _mm512_reduce_add_ps warns about its own header)
  _mm512_store_ps(lanes, s);
  return lanes[0];
}

struct Case {
  const char* name;  // instruction and width
  int chains;        // independent accumulators per thread
  const char* unit;  // what `per_instr` counts
  double per_instr;  // flops (fp32) or multiply-adds (dot products) per instruction
  uint32_t needs;    // core/cpu.h features
  const char* isa;   // named when missing
  double (*fn)(long);
};

}  // namespace

int main(int argc, char** argv) {
  using namespace harvit;
  CLI::App app{"harvit: the arithmetic ceilings of this CPU (instruction throughput, 1 and all threads)"};
  double seconds = 0.5;
  app.add_option("--seconds", seconds, "time per case and thread count")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const Case cases[] = {
      {"vfmadd231ps ymm", kYmmChains, "GFLOP/s", 16, cpu::kAvx2 | cpu::kFma, "AVX2/FMA", fma_ymm},
      {"vfmadd231ps zmm", kZmmChains, "GFLOP/s", 32, cpu::kAvx512f, "AVX-512F", fma_zmm},
      {"vpdpbusd ymm", kYmmChains, "G int8 multiply-adds/s", 32, cpu::kAvxVnni, "AVX-VNNI", dpbusd_ymm},
      {"vpdpbusd zmm", kZmmChains, "G int8 multiply-adds/s", 64, cpu::kAvx512f | cpu::kAvx512Vnni, "AVX512-VNNI", dpbusd_zmm},
      {"vdpbf16ps zmm", kZmmChains, "G bf16 multiply-adds/s", 32, cpu::kAvx512f | cpu::kAvx512Bf16, "AVX512-BF16", dpbf16_zmm},
  };
  const int all = omp_get_max_threads();
  for (const Case& c : cases) {
    if (!cpu::has(c.needs)) {
      std::printf("{\"instruction\": \"%s\", \"skipped\": \"this CPU (or HARVIT_ISA) lacks %s\"}\n", c.name, c.isa);
      continue;
    }
    for (int threads : {1, all}) {
      if (threads == all && all == 1) break;
      // calibrate on one thread, then every thread runs the same count
      long iters = 1;
      for (;;) {
        const auto t0 = std::chrono::steady_clock::now();
        c.fn(iters);
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > seconds / 4) break;
        iters *= 2;
      }
      iters *= 4;
      double sink = 0;
      const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
      sink += c.fn(iters);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = double(threads) * iters * kInner * c.chains * c.per_instr / s / 1e9;
      std::printf("{\"instruction\": \"%s\", \"threads\": %d, \"rate\": %.1f, \"unit\": \"%s\", \"per_thread\": %.1f, "
                  "\"check\": %.3g, \"isa\": %s}\n",
                  c.name, threads, rate, c.unit, rate / threads, sink, bench::isa_json().c_str());
    }
  }
  return 0;
}
