// int8 tile kernel for AVX-512 (compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq; with
// HARVIT_INT8_AVX512VNNI from int8_gemm_avx512vnni.cpp, also -mavx512vnni). See int8_kernels.h
// for the rules of this file. 512-bit registers, blocks of 16 outputs x 4 inputs (64 bytes).
// GCC 12 warns that _mm512_cvtepi32_ps's _mm512_undefined_ps() is used uninitialized (a false
// positive of its own header).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

// The register tile: 4 rows x 4 blocks of 16 outputs (16 accumulators, 4 weight registers).
// Measured on one core with the accumulators kept in registers (the asm dot below), on the seed
// ViT's batch-1 layers (bench_layers BM_Int8LinearForward/4-7, Xeon with AVX512-VNNI): 4x64 81 /
// 33.5 / 30.4 us (q|k|v, attention out, merge), 6x64 83 / 34 / 31, 8x32 85 / 35 / 31, 12x32 96 /
// 39 / 34; before that fix (session 4), 8x32 and 6x64 led a sweep of 17 shapes.
#ifndef HARVIT_TILE_ROWS
#define HARVIT_TILE_ROWS 4
#define HARVIT_TILE_BLOCKS 4
#endif

#include "core/int8_tile_impl.h"

namespace harvit::int8k {
namespace {

struct V512 {
  using reg = __m512i;
  static constexpr int BLOCK = 16;
  static reg zero() { return _mm512_setzero_si512(); }
  static reg bcast(int32_t a4) { return _mm512_set1_epi32(a4); }
  static reg load(const int8_t* p) { return _mm512_loadu_si512(p); }
  static reg dot(reg acc, reg a, reg w) {
#ifdef HARVIT_INT8_AVX512VNNI
    // vpdpbusd zmm: 4 u8 x s8 products into int32, in place. Written as asm: with the builtin,
    // GCC 12 copies every accumulator to another register and back around each vpdpbusd.
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(w));
    return acc;
#else
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(a, w), _mm512_set1_epi16(1)));
#endif
  }
  static void store(float* o, int64_t OUT, int64_t oc, reg acc, float as, int32_t zp, const int32_t* wsum,
                    const float* wscale, const float* bias) {
    const __m512i comp = _mm512_mullo_epi32(_mm512_set1_epi32(zp), _mm512_loadu_si512(wsum + oc));
    const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, comp));
    const __m512 res =
        _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(as), _mm512_loadu_ps(wscale + oc)), v, _mm512_loadu_ps(bias + oc));
    if (oc + 16 <= OUT)
      _mm512_storeu_ps(o + oc, res);
    else
      _mm512_mask_storeu_ps(o + oc, static_cast<__mmask16>((1u << (OUT - oc)) - 1), res);
  }
};

}  // namespace

#ifdef HARVIT_INT8_AVX512VNNI
extern const Kernel kAvx512Vnni = {"AVX512-VNNI", V512::BLOCK, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS,
                                   run<V512, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS>};
#else
extern const Kernel kAvx512 = {"AVX512BW", V512::BLOCK, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS,
                               run<V512, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS>};
#endif

}  // namespace harvit::int8k
