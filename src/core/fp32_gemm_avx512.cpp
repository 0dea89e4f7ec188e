// fp32 register-tile kernel for AVX-512 (core/fp32_kernels.h): 12 rows x 32 columns of C in 24
// zmm registers over the whole k loop; per step one 32-float row of B (a packed panel's, or a
// plain matrix's read through the column masks: two loads), 12 broadcasts of A, 24 FMAs. Serves
// PackedB (batch-1 and streaming linear layers) and small_gemm (attention heads). Compiled with
// -mavx512f -mavx512bw -mavx512vl -mavx512dq -ffp-contract=off.
#include <immintrin.h>

#include <cstdint>

#include "core/fp32_kernels.h"

namespace harvit::f32k {
namespace {

constexpr int kWidth = 32, kRows = 12;

// PLAIN: B is a plain matrix, rows ldb apart, read through the column masks (it may end at column
// n), and A's element (r, p) is at a[r * lda + p * acs]. Else B is a packed panel (rows kWidth
// apart, zero-padded) and acs is 1: constants the compiler folds (a tenth faster, measured).
template <int RB, bool PLAIN>
void tile(int64_t k, const float* a, int64_t lda, int64_t acs, const float* b, int64_t ldb, float* c, int64_t ldc,
          bool accumulate, float alpha, const float* bias, __mmask16 m0, __mmask16 m1) {
  if constexpr (!PLAIN) {
    acs = 1;
    ldb = kWidth;
  }
  __m512 c0[RB], c1[RB];
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m512 b0 = PLAIN ? _mm512_maskz_loadu_ps(m0, b + p * ldb) : _mm512_loadu_ps(b + p * ldb);
    const __m512 b1 = PLAIN ? _mm512_maskz_loadu_ps(m1, b + p * ldb + 16) : _mm512_loadu_ps(b + p * ldb + 16);
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * lda + p * acs]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
  const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  const __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) {
    float* d = c + r * ldc;
    __m512 v0 = _mm512_mul_ps(al, c0[r]), v1 = _mm512_mul_ps(al, c1[r]);
    if (bias) {
      v0 = _mm512_add_ps(v0, bias0);
      v1 = _mm512_add_ps(v1, bias1);
    }
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, d));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, d + 16));
    }
    _mm512_mask_storeu_ps(d, m0, v0);
    _mm512_mask_storeu_ps(d + 16, m1, v1);
  }
}

// One row (a GEMV: the batch-1 dense layer), NP panels side by side: each weight is used once, so
// the product is a stream of the panels from memory; NP concurrent streams keep more cache-line
// fills in flight than one (measured: 1 x 3072 -> 1024, one thread, 518 us with one stream).
template <int NP, bool PLAIN>
void gemv_panels(int64_t k, const float* a, int64_t acs, const float* b, int64_t ldb, int64_t pstride, float* c,
                 bool accumulate, float alpha, const float* bias, const __mmask16* m) {
  if constexpr (!PLAIN) {
    acs = 1;
    ldb = kWidth;
  }
  __m512 acc[2 * NP];
#pragma GCC unroll 16
  for (int i = 0; i < 2 * NP; ++i) acc[i] = _mm512_setzero_ps();
  for (int64_t p = 0; p < k; ++p) {
    const __m512 av = _mm512_set1_ps(a[p * acs]);
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) {
      const float* bq = b + q * pstride + p * ldb;
      const __m512 b0 = PLAIN ? _mm512_maskz_loadu_ps(m[2 * q], bq) : _mm512_loadu_ps(bq);
      const __m512 b1 = PLAIN ? _mm512_maskz_loadu_ps(m[2 * q + 1], bq + 16) : _mm512_loadu_ps(bq + 16);
      acc[2 * q] = _mm512_fmadd_ps(av, b0, acc[2 * q]);
      acc[2 * q + 1] = _mm512_fmadd_ps(av, b1, acc[2 * q + 1]);
    }
  }
  const __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int q = 0; q < NP; ++q) {
    float* d = c + q * kWidth;
    __m512 v0 = _mm512_mul_ps(al, acc[2 * q]), v1 = _mm512_mul_ps(al, acc[2 * q + 1]);
    if (bias) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m[2 * q], bias + q * kWidth));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m[2 * q + 1], bias + q * kWidth + 16));
    }
    if (accumulate) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m[2 * q], d));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m[2 * q + 1], d + 16));
    }
    _mm512_mask_storeu_ps(d, m[2 * q], v0);
    _mm512_mask_storeu_ps(d + 16, m[2 * q + 1], v1);
  }
}

template <bool PLAIN>
void rows_tile(int rows, int64_t k, const float* a, int64_t lda, int64_t acs, const float* b, int64_t ldb, float* c,
               int64_t ldc, bool accumulate, float alpha, const float* bias, __mmask16 m0, __mmask16 m1) {
#define T_ARGS k, a, lda, acs, b, ldb, c, ldc, accumulate, alpha, bias, m0, m1
  switch (rows) {
    case 12: tile<12, PLAIN>(T_ARGS); break;
    case 11: tile<11, PLAIN>(T_ARGS); break;
    case 10: tile<10, PLAIN>(T_ARGS); break;
    case 9: tile<9, PLAIN>(T_ARGS); break;
    case 8: tile<8, PLAIN>(T_ARGS); break;
    case 7: tile<7, PLAIN>(T_ARGS); break;
    case 6: tile<6, PLAIN>(T_ARGS); break;
    case 5: tile<5, PLAIN>(T_ARGS); break;
    case 4: tile<4, PLAIN>(T_ARGS); break;
    case 3: tile<3, PLAIN>(T_ARGS); break;
    case 2: tile<2, PLAIN>(T_ARGS); break;
    default: tile<1, PLAIN>(T_ARGS); break;
  }
#undef T_ARGS
}

__mmask16 lanes(int64_t n) { return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1u); }

// The two 16-lane masks of panel p's columns (the last panel may be partial): m[0], m[1].
void panel_masks(int64_t n, int64_t p, __mmask16* m) {
  const int64_t nc = n - p * kWidth < kWidth ? n - p * kWidth : kWidth;
  m[0] = lanes(nc);
  m[1] = lanes(nc > 16 ? nc - 16 : 0);
}

template <bool PLAIN>
void panels_t(const Args& g, int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
  const int64_t m = r1 - r0;
  if (m <= 0) return;
  // packed: panel p at bp + p * k * width, rows width apart; plain: at bp + p * width, rows ldb apart
  const int64_t ldb = PLAIN ? g.ldb : kWidth, pstride = PLAIN ? kWidth : g.k * kWidth;
  if (m == 1) {  // a GEMV: four panels at a time, then the rest one by one
    constexpr int NP = 4;
    int64_t p = p0;
    __mmask16 mk[2 * NP];
    for (; p + NP <= p1; p += NP) {
      for (int q = 0; q < NP; ++q) panel_masks(g.n, p + q, mk + 2 * q);
      gemv_panels<NP, PLAIN>(g.k, g.a + r0 * g.lda, g.acs, g.bp + p * pstride, ldb, pstride, g.c + r0 * g.ldc + p * kWidth,
                      g.accumulate, g.alpha, g.bias ? g.bias + p * kWidth : nullptr, mk);
    }
    for (; p < p1; ++p) {
      panel_masks(g.n, p, mk);
      gemv_panels<1, PLAIN>(g.k, g.a + r0 * g.lda, g.acs, g.bp + p * pstride, ldb, pstride, g.c + r0 * g.ldc + p * kWidth,
                     g.accumulate, g.alpha, g.bias ? g.bias + p * kWidth : nullptr, mk);
    }
    return;
  }
  // ceil(m / 12) row tiles of near-equal height: short tiles keep too few FMA chains in flight
  const int64_t tiles = (m + kRows - 1) / kRows;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t j0 = p * kWidth;
    __mmask16 mk[2];
    panel_masks(g.n, p, mk);
    const float* b = g.bp + p * pstride;
    for (int64_t t = 0, i = r0; t < tiles; ++t) {
      const int rows = static_cast<int>(m / tiles + (t >= tiles - m % tiles ? 1 : 0));
      rows_tile<PLAIN>(rows, g.k, g.a + i * g.lda, g.lda, g.acs, b, ldb, g.c + i * g.ldc + j0, g.ldc, g.accumulate, g.alpha,
                g.bias ? g.bias + j0 : nullptr, mk[0], mk[1]);
      i += rows;
    }
  }
}

void panels(const Args& g, int64_t r0, int64_t r1, int64_t p0, int64_t p1) {
  if (g.plain)
    panels_t<true>(g, r0, r1, p0, p1);
  else
    panels_t<false>(g, r0, r1, p0, p1);
}

}  // namespace

const Kernel kAvx512 = {"AVX512 12x32", kWidth, panels};

}  // namespace harvit::f32k
