// int8 tile kernel for AVX2 (compiled with -mavx2 -mfma; also AVX-VNNI when built with
// HARVIT_INT8_AVXVNNI from int8_gemm_avxvnni.cpp). See int8_kernels.h for the rules of this file.
// 256-bit registers, blocks of 8 outputs x 4 inputs (32 bytes).
#include <immintrin.h>

// The register tile: 1 row x 8 blocks of 8 outputs for AVX2 (measured on Zen 4 against 4x16,
// 6x16, 3x24, 2x32, 1x96; on an AVX-512 host 3x16..5x16 and 3x24 are within 5 %), 6 rows x 2
// blocks for AVX-VNNI (int8_gemm_avxvnni.cpp; see docs/performance.md).
#ifndef HARVIT_TILE_ROWS
#define HARVIT_TILE_ROWS 1
#define HARVIT_TILE_BLOCKS 8
#endif

#include "core/int8_tile_impl.h"

namespace harvit::int8k {
namespace {

struct V256 {
  using reg = __m256i;
  static constexpr int BLOCK = 8;
  static reg zero() { return _mm256_setzero_si256(); }
  static reg bcast(int32_t a4) { return _mm256_set1_epi32(a4); }
  static reg load(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static reg dot(reg acc, reg a, reg w) {
#ifdef HARVIT_INT8_AVXVNNI
    // vpdpbusd ymm (VEX, hence {vex}: the EVEX form would need AVX512-VL): 4 u8 x s8 products
    // into int32, in place. asm, as in int8_gemm_avx512.cpp: with the builtin GCC 12 copies the
    // accumulators around each instruction and spills some to the stack.
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(a), "x"(w));
    return acc;
#else
    // vpmaddubsw adds adjacent u8 x s8 pairs into int16 (exact: 2 * 255 * 63 < 32767 with 7-bit
    // weights), vpmaddwd with ones adds those pairs into int32: the same sums as vpdpbusd.
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(a, w), _mm256_set1_epi16(1)));
#endif
  }
  static void store(float* o, int64_t OUT, int64_t oc, reg acc, float as, int32_t zp, const int32_t* wsum,
                    const float* wscale, const float* bias) {
    const __m256i comp =
        _mm256_mullo_epi32(_mm256_set1_epi32(zp), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wsum + oc)));
    const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc, comp));
    const __m256 res =
        _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(as), _mm256_loadu_ps(wscale + oc)), v, _mm256_loadu_ps(bias + oc));
    if (oc + 8 <= OUT) {
      _mm256_storeu_ps(o + oc, res);
    } else {
      const int64_t left = OUT - oc;  // 1..7
      const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      _mm256_maskstore_ps(o + oc, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(left)), lane), res);
    }
  }
};

}  // namespace

#ifdef HARVIT_INT8_AVXVNNI
extern const Kernel kAvxVnni = {"AVX-VNNI", V256::BLOCK, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS,
                                run<V256, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS>};
#else
extern const Kernel kAvx2 = {"AVX2", V256::BLOCK, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS,
                             run<V256, HARVIT_TILE_ROWS, HARVIT_TILE_BLOCKS>};
#endif

}  // namespace harvit::int8k
