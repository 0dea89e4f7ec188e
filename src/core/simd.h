// Helpers for harvit's own vector kernels (small GEMMs, attention, int8 linear layers).
#pragma once
#include <cstdint>
#include <utility>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HARVIT_AVX2 1
#endif

namespace harvit::simd {

// f(std::integral_constant<int, I>{}) for I = 0 .. N-1, unrolled in the source. Register tiles
// (arrays of __m256 accumulators) must be indexed by constants: GCC 12 keeps an array indexed by
// a loop counter in memory, storing every accumulator on every step (measured: a 6 x 16 fp32
// tile at 33 GFLOP/s on one core with loops, 92 with this).
template <int N, class F>
inline __attribute__((always_inline)) void unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }(
      std::make_integer_sequence<int, N>{});
}

// dst[0..n) = src[0..n) for buffers that do not overlap, as a vector loop. Not memcpy for
// activation-sized blocks: glibc's memcpy uses `rep movsb` above a few KiB, which on this AMD
// EPYC runs 16x slower when source and destination sit at nearly the same offset within a 4 KiB
// page (measured: 96 KiB in 32 us instead of 2 us) - as two buffers of one layer often do.
inline void copy(float* __restrict dst, const float* __restrict src, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

#ifdef HARVIT_AVX2
// All 32-bit lanes below c (0..8) set: masks for _mm256_maskload_ps / _mm256_maskstore_ps.
inline __m256i first_lanes(int64_t c) {
  static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + 8 - c));
}

inline float hsum(__m256 v) {
  __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
}

inline float hmax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

// e^x in 8 lanes: Cody-Waite reduction by ln 2 and Cephes' degree-6 polynomial for e^r (about
// 1 ulp); below ln(FLT_MIN) the result is 0 and above 88 it saturates at e^88 (finite).
inline __m256 exp(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f);
  const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_add_ps(_mm256_fmadd_ps(y, _mm256_mul_ps(x, x), x), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_and_ps(_mm256_mul_ps(y, _mm256_castsi256_ps(e)), keep);
}

// dst (8 x 8, rows ldd apart) = src (8 x 8, rows lds apart) transposed.
inline void transpose8x8(float* dst, int64_t ldd, const float* src, int64_t lds) {
  __m256 r[8], t[8];
  unroll<8>([&](auto i) { r[i] = _mm256_loadu_ps(src + i * lds); });
  unroll<4>([&](auto i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  });
  unroll<2>([&](auto i) {
    r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  });
  unroll<4>([&](auto i) {
    _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  });
}
#endif

}  // namespace harvit::simd
