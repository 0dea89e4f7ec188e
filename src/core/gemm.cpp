#include "core/gemm.h"

#include <omp.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/fp32_kernels.h"
#include "core/simd.h"
#include "core/tensor.h"
#include "core/threading.h"
#include "oneapi/dnnl/dnnl.h"

namespace harvit {

void gemm(char transa, char transb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  dnnl_status_t st = dnnl_sgemm(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  if (st != dnnl_success)
    fail("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(st)) + ") for M=" +
         std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
}

namespace {
// The AVX-512 panel kernel where the CPU (capped by HARVIT_ISA) has AVX-512 F/BW/VL/DQ.
const f32k::Kernel* panel_kernel() {
  using namespace cpu;
  return has(kAvx512f | kAvx512bw | kAvx512vl | kAvx512dq) ? &f32k::kAvx512 : nullptr;
}
}  // namespace

void small_gemm_reference(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t ars,
                          int64_t acs, const float* B, int64_t brs, int64_t bcs, float* C, int64_t ldc,
                          bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    float* c = C + i * ldc;
    for (int64_t j = 0; j < n; ++j) {
      float s = 0.0f;
      for (int64_t p = 0; p < k; ++p) s += A[i * ars + p * acs] * B[p * brs + j * bcs];
      c[j] = accumulate ? c[j] + alpha * s : alpha * s;
    }
  }
}

#ifdef HARVIT_AVX2
namespace {
using simd::unroll;

// RB rows x 16 columns of C held in 2 * RB registers over the whole k loop: per step two rows of
// B are loaded, RB elements of A broadcast, 2 * RB FMAs issued (RB = 6 keeps 12 FMA chains in
// flight: 92 GFLOP/s on one core here, 4 rows only ~47). FULL = all 16 columns exist, else the
// masks m0/m1 pick the columns that do (masked lanes are neither read nor written). Each element:
// an FMA chain over k from zero, times alpha, + C - the AVX-512 kernel's order, so the two give
// the same bits; this file is compiled with -ffp-contract=off so that alpha * sum + C stays two
// roundings (GCC fused them in some tile heights). An inline function from a header that does
// float arithmetic and is emitted here would carry that mode to its other callers: none is.
template <int RB, bool FULL>
void small_tile(int64_t k, float alpha, const float* A, int64_t ars, int64_t acs, const float* B, int64_t ldb,
                float* C, int64_t ldc, bool accumulate, __m256i m0, __m256i m1) {
  __m256 c[RB][2];
  unroll<RB>([&](auto r) { c[r][0] = c[r][1] = _mm256_setzero_ps(); });
  for (int64_t p = 0; p < k; ++p) {
    const float* b = B + p * ldb;
    const __m256 b0 = FULL ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
    const __m256 b1 = FULL ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
    const float* a = A + p * acs;
    unroll<RB>([&](auto r) {
      const __m256 av = _mm256_broadcast_ss(a + r * ars);
      c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);
    });
  }
  const __m256 al = _mm256_set1_ps(alpha);
  unroll<RB>([&](auto r) {
    float* d = C + r * ldc;
    __m256 v0 = _mm256_mul_ps(al, c[r][0]), v1 = _mm256_mul_ps(al, c[r][1]);
    if (FULL) {
      if (accumulate) {
        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(d));
        v1 = _mm256_add_ps(v1, _mm256_loadu_ps(d + 8));
      }
      _mm256_storeu_ps(d, v0);
      _mm256_storeu_ps(d + 8, v1);
    } else {
      if (accumulate) {
        v0 = _mm256_add_ps(v0, _mm256_maskload_ps(d, m0));
        v1 = _mm256_add_ps(v1, _mm256_maskload_ps(d + 8, m1));
      }
      _mm256_maskstore_ps(d, m0, v0);
      _mm256_maskstore_ps(d + 8, m1, v1);
    }
  });
}

template <bool FULL>
void small_rows(int64_t rows, int64_t k, float alpha, const float* A, int64_t ars, int64_t acs, const float* B,
                int64_t ldb, float* C, int64_t ldc, bool accumulate, __m256i m0, __m256i m1) {
  switch (rows) {
    case 6: small_tile<6, FULL>(k, alpha, A, ars, acs, B, ldb, C, ldc, accumulate, m0, m1); break;
    case 5: small_tile<5, FULL>(k, alpha, A, ars, acs, B, ldb, C, ldc, accumulate, m0, m1); break;
    case 4: small_tile<4, FULL>(k, alpha, A, ars, acs, B, ldb, C, ldc, accumulate, m0, m1); break;
    case 3: small_tile<3, FULL>(k, alpha, A, ars, acs, B, ldb, C, ldc, accumulate, m0, m1); break;
    case 2: small_tile<2, FULL>(k, alpha, A, ars, acs, B, ldb, C, ldc, accumulate, m0, m1); break;
    default: small_tile<1, FULL>(k, alpha, A, ars, acs, B, ldb, C, ldc, accumulate, m0, m1); break;
  }
}

// dst (k x n) = src (n x k, rows lds apart) transposed: 8 x 8 blocks in registers, edges by
// scalar copies.
void transpose_block(float* dst, const float* src, int64_t n, int64_t k, int64_t lds) {
  const int64_t n8 = n / 8 * 8, k8 = k / 8 * 8;
  for (int64_t j = 0; j < n8; j += 8)
    for (int64_t p = 0; p < k8; p += 8) simd::transpose8x8(dst + p * n + j, n, src + j * lds + p, lds);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = j < n8 ? k8 : 0; p < k; ++p) dst[p * n + j] = src[j * lds + p];
}
}  // namespace
#endif

void small_gemm(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t ars, int64_t acs,
                const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (const f32k::Kernel* kern = panel_kernel()) {
    // AVX-512: 12 x 32 tiles over B in place (the same sums in the same order as below: equal
    // bits). One attention head's q k^T and P v (32 x 32 x 64) took 2.0 and 1.75 us with the AVX2
    // kernel on one core of the Xeon.
    f32k::Args g{A, ars, B, k, n, C, ldc, accumulate, nullptr, alpha, true, ldb, acs};
    kern->fn(g, 0, m, 0, (n + kern->width - 1) / kern->width);
    return;
  }
#ifdef HARVIT_AVX2
  constexpr int64_t RB = 6, NC = 16;
  for (int64_t j0 = 0; j0 < n; j0 += NC) {
    const int64_t nc = std::min(NC, n - j0);
    const __m256i m0 = simd::first_lanes(std::min<int64_t>(nc, 8)),
                  m1 = simd::first_lanes(std::max<int64_t>(nc - 8, 0));
    // ceil(m / 6) row tiles of near-equal height (32 rows: 5,5,5,5,6,6 rather than 6 x 5 + 2):
    // short tiles keep too few FMA chains in flight.
    const int64_t tiles = (m + RB - 1) / RB;
    for (int64_t t = 0, i0 = 0; t < tiles; ++t) {
      const int64_t rows = m / tiles + (t >= tiles - m % tiles ? 1 : 0);
      const float* a = A + i0 * ars;
      float* c = C + i0 * ldc + j0;
      if (nc == NC)
        small_rows<true>(rows, k, alpha, a, ars, acs, B + j0, ldb, c, ldc, accumulate, m0, m1);
      else
        small_rows<false>(rows, k, alpha, a, ars, acs, B + j0, ldb, c, ldc, accumulate, m0, m1);
      i0 += rows;
    }
  }
#else
  small_gemm_reference(m, n, k, alpha, A, ars, acs, B, ldb, 1, C, ldc, accumulate);
#endif
}

void small_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda, const float* B,
                   int64_t ldb, float* C, int64_t ldc, bool accumulate) {
#ifdef HARVIT_AVX2
  // B^T into per-thread scratch, then the broadcast kernel: dot products along k ran at half its
  // speed here (too few independent FMA chains per load).
  thread_local std::vector<float> bt;
  if (bt.size() < static_cast<size_t>(k * n)) bt.resize(k * n);
  transpose_block(bt.data(), B, n, k, ldb);
  small_gemm(m, n, k, alpha, A, lda, 1, bt.data(), n, C, ldc, accumulate);
#else
  small_gemm_reference(m, n, k, alpha, A, lda, 1, B, 1, ldb, C, ldc, accumulate);
#endif
}

const char* PackedB::kernel_name() { return panel_kernel() ? panel_kernel()->name : "AVX2 6x16"; }

void PackedB::pack_transposed(const float* W, int64_t n, int64_t k, int64_t ldw) {
  const f32k::Kernel* kern = panel_kernel();
  n_ = n;
  k_ = k;
  width_ = kern ? kern->width : 16;
  const int64_t panels = (n + width_ - 1) / width_;
  p_.assign(panels * k * width_, 0.0f);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t p = 0; p < k; ++p) p_[((j / width_) * k + p) * width_ + j % width_] = W[j * ldw + p];
}

void PackedB::multiply(int64_t m, const float* A, int64_t lda, float* C, int64_t ldc, bool accumulate,
                       const float* bias) const {
  if (m <= 0 || n_ == 0) return;
  const int64_t panels = (n_ + width_ - 1) / width_;
  const f32k::Kernel* kern = panel_kernel();
  if (kern && kern->width != width_) kern = nullptr;
  auto run = [&](int64_t p0, int64_t p1) {  // panels [p0, p1), every row
    if (kern) {
      kern->fn(f32k::Args{A, lda, p_.data(), k_, n_, C, ldc, accumulate, bias}, 0, m, p0, p1);
      return;
    }
    for (int64_t pn = p0; pn < p1; ++pn) {  // no AVX-512: the AVX2 small kernel over each panel
      const int64_t j0 = pn * width_, w = std::min(width_, n_ - j0);
      if (bias)  // C's columns of this panel start as the bias (or get it added), then accumulate
        for (int64_t i = 0; i < m; ++i)
          for (int64_t j = 0; j < w; ++j) C[i * ldc + j0 + j] = (accumulate ? C[i * ldc + j0 + j] : 0.0f) + bias[j0 + j];
      small_gemm(m, w, k_, 1.0f, A, lda, 1, p_.data() + pn * k_ * width_, width_, C + j0, ldc, accumulate || bias);
    }
  };
  // On the pool, the panels are split into one contiguous run per thread: every thread streams
  // its own part of B once (a batch-1 layer reads each weight once; B is what costs).
  const int64_t threads = serial_mode() ? 1 : std::min<int64_t>(num_threads(), panels);
  if (threads <= 1 || m * n_ * k_ < (int64_t(1) << 16)) {
    run(0, panels);
    return;
  }
  parallel_for(threads, true, [&](int64_t t) { run(panels * t / threads, panels * (t + 1) / threads); });
}

const char* small_gemm_kernel() {
  if (panel_kernel()) return "harvit AVX512 12x32";
#ifdef HARVIT_AVX2
  return "harvit AVX2 6x16";
#else
  return "portable loops";
#endif
}

void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

int num_threads() { return omp_get_max_threads(); }

}  // namespace harvit
