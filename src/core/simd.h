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

inline float hmin(__m256 v) {
  __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_min_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_min_ss(m, _mm_movehdup_ps(m)));
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

// Row reductions with four 8-lane accumulators. `#pragma omp simd reduction` gives one vector
// accumulator, so the loop waits on the add's (or max's) latency every 8 floats: a LayerNorm row
// of 256 took 4x the time it takes here (measured in the batch-1 forward, session 8).
// reduce4 folds x[0..n) into four accumulators (each starting at init) with step(acc, 8 floats),
// 32 floats a round, then 8; combines them with comb, the lanes with lanes, and folds the last
// n % 8 floats with tail(result, x).
template <class Step, class Comb, class Lanes, class Tail>
inline float reduce4(const float* x, int64_t n, __m256 init, Step&& step, Comb&& comb, Lanes&& lanes, Tail&& tail) {
  __m256 a0 = init, a1 = init, a2 = init, a3 = init;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    a0 = step(a0, _mm256_loadu_ps(x + i));
    a1 = step(a1, _mm256_loadu_ps(x + i + 8));
    a2 = step(a2, _mm256_loadu_ps(x + i + 16));
    a3 = step(a3, _mm256_loadu_ps(x + i + 24));
  }
  for (; i + 8 <= n; i += 8) a0 = step(a0, _mm256_loadu_ps(x + i));
  float r = lanes(comb(comb(a0, a1), comb(a2, a3)));
  for (; i < n; ++i) r = tail(r, x[i]);
  return r;
}

inline __m256 add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }

// sum of x[0..n)
inline float sum(const float* x, int64_t n) {
  return reduce4(x, n, _mm256_setzero_ps(), add, add, hsum, [](float r, float v) { return r + v; });
}

// sum of (x[i] - m)^2 over [0..n)
inline float sum_sq_dev(const float* x, int64_t n, float m) {
  const __m256 vm = _mm256_set1_ps(m);
  return reduce4(
      x, n, _mm256_setzero_ps(),
      [vm](__m256 a, __m256 v) {
        const __m256 d = _mm256_sub_ps(v, vm);
        return _mm256_fmadd_ps(d, d, a);
      },
      add, hsum, [m](float r, float v) { return r + (v - m) * (v - m); });
}

// lo = min, hi = max of x[0..n), n >= 1, in one pass (two accumulators for each). NaNs are
// skipped unless x[0] is one, as in the scalar form below: vminps/vmaxps return their second
// operand when either is NaN, so the accumulator goes second and starts from x[0].
inline void min_max(const float* x, int64_t n, float& lo, float& hi) {
  lo = x[0];
  hi = x[0];
  int64_t i = 0;
  if (n >= 16) {
    __m256 l0 = _mm256_set1_ps(x[0]), l1 = l0, h0 = l0, h1 = l0;
    for (; i + 16 <= n; i += 16) {
      const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
      l0 = _mm256_min_ps(v0, l0);
      l1 = _mm256_min_ps(v1, l1);
      h0 = _mm256_max_ps(v0, h0);
      h1 = _mm256_max_ps(v1, h1);
    }
    lo = hmin(_mm256_min_ps(l0, l1));
    hi = hmax(_mm256_max_ps(h0, h1));
  }
  for (; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
}
#else
inline float sum(const float* x, int64_t n) {
  float r = 0.0f;
  for (int64_t i = 0; i < n; ++i) r += x[i];
  return r;
}
inline float sum_sq_dev(const float* x, int64_t n, float m) {
  float r = 0.0f;
  for (int64_t i = 0; i < n; ++i) r += (x[i] - m) * (x[i] - m);
  return r;
}
inline void min_max(const float* x, int64_t n, float& lo, float& hi) {
  lo = hi = x[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
}
#endif

}  // namespace harvit::simd
