#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/simd.h"
#include "core/tensor.h"
#include "core/threading.h"
#include "fixture_util.h"
#include "nn/params.h"

using namespace harvit;

TEST(Tensor, ShapesPrintLikeTorch) {
  EXPECT_EQ(shape_str({2, 3, 4}), "[2, 3, 4]");
  EXPECT_EQ(shape_str({}), "[]");
  Tensor t({2, 6}, 1.5f);
  EXPECT_EQ(t.numel(), 12);
  t.reshape({3, 4});
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_THROW(t.reshape({5, 2}), std::runtime_error);
}

TEST(Rng, DeterministicAndInRange) {
  Rng a(42), b(42), c(43);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(a.next_u64(), c.next_u64());
  Rng r(1);
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    float u = r.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    float z = r.normal();
    sum += z;
    sq += double(z) * z;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sq / n, 1.0, 0.02);
  auto st = r.state();
  uint64_t x = r.next_u64();
  r.set_state(st);
  EXPECT_EQ(r.next_u64(), x);
}

TEST(Rng, FixtureUniformMatchesPythonImplementation) {
  // Values printed by tools/torch_reference.py: fixture_uniform(7, 3, 4) and (0, 0, 2).
  const float want73[] = {-0.9597227573394775f, -0.14242684841156006f, -0.25183427333831787f,
                          -0.570358157157898f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(fixture_uniform(7, 3, i), want73[i]) << i;
  EXPECT_EQ(fixture_uniform(0, 0, 0), 0.3048969507217407f);
  EXPECT_EQ(fixture_uniform(0, 0, 1), -0.6672071218490601f);
  for (uint64_t i = 0; i < 1000; ++i) {
    float u = fixture_uniform(7, 3, i);
    ASSERT_GE(u, -1.0f);
    ASSERT_LT(u, 1.0f);
  }
}

TEST(Gemm, AllTransposeCombinationsMatchNaive) {
  Rng rng(3);
  const int64_t M = 7, N = 5, K = 9;
  for (char ta : {'N', 'T'})
    for (char tb : {'N', 'T'}) {
      std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
      for (auto& v : A) v = rng.normal();
      for (auto& v : B) v = rng.normal();
      for (auto& v : C) v = rng.normal();
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) {
            const float a = ta == 'N' ? A[i * K + k] : A[k * M + i];
            const float b = tb == 'N' ? B[k * N + j] : B[j * K + k];
            s += double(a) * b;
          }
          R[i * N + j] = float(0.5 * s + 2.0 * C[i * N + j]);
        }
      gemm(ta, tb, M, N, K, 0.5f, A.data(), ta == 'N' ? K : M, B.data(), tb == 'N' ? N : K, 2.0f,
           C.data(), N);
      for (int64_t i = 0; i < M * N; ++i) EXPECT_NEAR(C[i], R[i], 1e-4) << ta << tb << " " << i;
    }
}

// Every tile shape of the small-GEMM kernels (rows 1..13 cover each row-tile height and the
// balanced split; columns 1..35 every mask width; k with and without an 8-element tail), strided
// and transposed views, alpha, accumulate: against double-precision loops.
TEST(SmallGemm, KernelsMatchDoubleLoopsForEveryTileAndTail) {
  Rng rng(31);
  int checked = 0;
  for (int64_t m : {1, 2, 5, 6, 7, 12, 13, 32})
    for (int64_t n : {1, 3, 8, 9, 16, 17, 32, 35})
      for (int64_t k : {1, 7, 8, 19, 64}) {
        const int64_t pad = 3;  // strides wider than the matrices: views into bigger buffers
        std::vector<float> A((m + pad) * (k + pad)), B((k + pad) * (n + pad)), Bt((n + pad) * (k + pad));
        for (auto& v : A) v = rng.normal();
        for (auto& v : B) v = rng.normal();
        for (auto& v : Bt) v = rng.normal();
        const int64_t ldc = n + pad;
        std::vector<float> C0(m * ldc);
        for (auto& v : C0) v = rng.normal();
        for (bool accumulate : {false, true})
          for (int form = 0; form < 3; ++form) {  // A B, A^T-view B, A B^T
            std::vector<float> C = C0;
            const int64_t lda = k + pad, ldb = n + pad, ldbt = k + pad;
            // form 1 reads A as a transposed view: element (i, p) at A[p * (m + pad) + i]
            const int64_t ars = form == 1 ? 1 : lda, acs = form == 1 ? m + pad : 1;
            if (form == 2)
              small_gemm_nt(m, n, k, 0.75f, A.data(), lda, Bt.data(), ldbt, C.data(), ldc, accumulate);
            else
              small_gemm(m, n, k, 0.75f, A.data(), ars, acs, B.data(), ldb, C.data(), ldc, accumulate);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < ldc; ++j) {
                const float got = C[i * ldc + j];
                if (j >= n) {  // outside the product: untouched
                  ASSERT_EQ(got, C0[i * ldc + j]) << m << "x" << n << "x" << k << " form " << form;
                  continue;
                }
                double ref = 0;
                for (int64_t p = 0; p < k; ++p)
                  ref += double(A[i * ars + p * acs]) * (form == 2 ? Bt[j * ldbt + p] : B[p * ldb + j]);
                ref = 0.75 * ref + (accumulate ? C0[i * ldc + j] : 0.0);
                ASSERT_NEAR(got, ref, 1e-5 * (1 + std::sqrt(double(k)) * 4)) << m << "x" << n << "x" << k << " form "
                                                                             << form << " acc " << accumulate;
                ++checked;
              }
          }
      }
  EXPECT_GT(checked, 100000);
  // the portable path agrees with the double loops too (it is what non-AVX2 builds run)
  std::vector<float> A(5 * 7), B(7 * 9), C(5 * 9);
  for (auto& v : A) v = rng.normal();
  for (auto& v : B) v = rng.normal();
  small_gemm_reference(5, 9, 7, 1.0f, A.data(), 7, 1, B.data(), 9, 1, C.data(), 9, false);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 9; ++j) {
      double ref = 0;
      for (int64_t p = 0; p < 7; ++p) ref += double(A[i * 7 + p]) * B[p * 9 + j];
      EXPECT_NEAR(C[i * 9 + j], ref, 1e-5);
    }
}

// The AVX-512 and AVX2 small kernels promise the same bits (a model's outputs must not depend on
// the CPU's vector width): each element is a chain of fused multiply-adds over k from zero, then
// times alpha, then + C. Checked against that chain written out, on whichever kernel this CPU
// (capped by HARVIT_ISA: the isa_avx2_packed_gemm test) runs.
// Every row-tile height of both kernels (m 1..13, 25, 32), panel widths with partial masks and
// four-panel GEMV groups (n up to 130), strided and transposed views of A, B and C wider than the
// product (columns past n untouched).
TEST(SmallGemm, EveryKernelGivesTheBitsOfOneFmaChainPerElement) {
  if (std::string(small_gemm_kernel()) == "portable loops")
    GTEST_SKIP() << "no vector kernel in this build (the portable loops make no such promise)";
  Rng rng(37);
  for (int64_t m : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 25, 32})
    for (int64_t n : {3, 16, 17, 32, 33, 64, 130})
      for (int64_t k : {1, 9, 64}) {
        const int64_t pad = 3, ldb = n + pad, ldc = n + pad;
        std::vector<float> A((m + pad) * (k + pad)), B(k * ldb), C0(m * ldc);
        for (auto& v : A) v = rng.normal();
        for (auto& v : B) v = rng.normal();
        for (auto& v : C0) v = rng.normal();
        for (bool transposed_a : {false, true}) {
          // element (i, p) of A at A[i * ars + p * acs]: rows, or a transposed view
          const int64_t ars = transposed_a ? 1 : k + pad, acs = transposed_a ? m + pad : 1;
          for (bool accumulate : {false, true}) {
            std::vector<float> C = C0;
            small_gemm(m, n, k, 0.3f, A.data(), ars, acs, B.data(), ldb, C.data(), ldc, accumulate);
            for (int64_t i = 0; i < m; ++i)
              for (int64_t j = 0; j < ldc; ++j) {
                float want = C0[i * ldc + j];  // past n: untouched
                if (j < n) {
                  float s = 0.0f;
                  for (int64_t p = 0; p < k; ++p) s = std::fma(A[i * ars + p * acs], B[p * ldb + j], s);
                  volatile float v = 0.3f * s;  // rounded here, as the kernels do (no fused alpha * s + C)
                  want = accumulate ? v + C0[i * ldc + j] : v;
                }
                ASSERT_EQ(C[i * ldc + j], want) << small_gemm_kernel() << " " << m << "x" << n << "x" << k << " ("
                                                << i << "," << j << ") acc " << accumulate << " A^T " << transposed_a;
              }
          }
        }
      }
}

#ifdef HARVIT_AVX2
// PackedB (the streaming path's fp32 products): every row-tile height, partial panels, odd k,
// with and without accumulation, against double loops; HARVIT_ISA=avx2 runs the AVX2 panels.
TEST(PackedB, MatchesDoubleLoopsForEveryTileAndPartialPanel) {
  Rng rng(12);
  SCOPED_TRACE(PackedB::kernel_name());
  for (int64_t m : {1, 2, 5, 11, 12, 13, 25, 96}) {
    for (int64_t n : {1, 15, 16, 17, 33, 64, 100}) {
      for (int64_t k : {1, 7, 64}) {
        for (int mode = 0; mode < 4; ++mode) {  // accumulate x bias
          const bool acc = mode & 1, with_bias = mode & 2;
          const int64_t lda = k + 3, ldc = n + 5, ldw = k + 1;
          std::vector<float> A(m * lda), W(n * ldw), C(m * ldc), bias(n), want;
          for (auto& v : A) v = rng.normal();
          for (auto& v : W) v = rng.normal();
          for (auto& v : C) v = rng.normal();
          for (auto& v : bias) v = rng.normal();
          want = C;
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
              double s = with_bias ? bias[j] : 0.0;
              for (int64_t p = 0; p < k; ++p) s += double(A[i * lda + p]) * W[j * ldw + p];
              want[i * ldc + j] = static_cast<float>(acc ? want[i * ldc + j] + s : s);
            }
          PackedB pb;
          pb.pack_transposed(W.data(), n, k, ldw);
          pb.multiply(m, A.data(), lda, C.data(), ldc, acc, with_bias ? bias.data() : nullptr);
          double worst = 0;
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < ldc; ++j) {
              if (j >= n) {  // past n: untouched
                ASSERT_EQ(C[i * ldc + j], want[i * ldc + j]) << "wrote past column n at " << m << "x" << n << "x" << k;
                continue;
              }
              worst = std::max(worst, std::fabs(double(C[i * ldc + j]) - want[i * ldc + j]));
            }
          ASSERT_LT(worst, 1e-4) << m << "x" << n << "x" << k << (acc ? " accumulate" : "") << (with_bias ? " bias" : "");
        }
      }
    }
  }
}

// On the pool the panels are split among the threads: every element is still one thread's sum in
// the same order, so any thread count gives the serial result bit for bit (GEMV and tile paths,
// a partial last panel, more threads than panels).
TEST(PackedB, PoolSplitEqualsTheCallingThreadBitForBit) {
  Rng rng(13);
  const int before = num_threads();
  for (int64_t m : {1, 3, 12, 96}) {
    for (int64_t n : {20, 123, 288}) {
      const int64_t k = 300;
      std::vector<float> A(m * k), W(n * k), bias(n), want(m * n, 0.5f);
      for (auto& v : A) v = rng.normal();
      for (auto& v : W) v = rng.normal();
      for (auto& v : bias) v = rng.normal();
      PackedB pb;
      pb.pack_transposed(W.data(), n, k, k);
      {
        SerialScope serial;
        pb.multiply(m, A.data(), k, want.data(), n, true, bias.data());
      }
      for (int threads : {1, 2, 3, 5}) {
        set_num_threads(threads);
        std::vector<float> got(m * n, 0.5f);
        pb.multiply(m, A.data(), k, got.data(), n, true, bias.data());
        ASSERT_EQ(got, want) << m << "x" << n << "x" << k << ", " << threads << " threads";
      }
    }
  }
  set_num_threads(before);
}

TEST(Simd, ExpWithinFourUlpOnTheSoftmaxRangeAndZeroBelow) {
  test::ErrTally err;  // a NaN result counts as bad (std::max(worst, NaN) would drop it)
  for (float x = -87.0f; x <= 10.0f; x += 0.00731f) {
    alignas(32) float out[8];
    _mm256_store_ps(out, simd::exp(_mm256_set1_ps(x)));
    const double ref = std::exp(double(x));
    err.add(float(std::fabs(out[0] - ref) / ref), 4 * 1.19e-7f);
  }
  EXPECT_EQ(err.bad, 0) << "worst rel err " << err.worst;
  alignas(32) float out[8];
  _mm256_store_ps(out, simd::exp(_mm256_set1_ps(-100.0f)));
  EXPECT_EQ(out[0], 0.0f);
  _mm256_store_ps(out, simd::exp(_mm256_set1_ps(-std::numeric_limits<float>::infinity())));
  EXPECT_EQ(out[0], 0.0f);
  _mm256_store_ps(out, simd::exp(_mm256_set1_ps(0.0f)));
  EXPECT_EQ(out[0], 1.0f);
  _mm256_store_ps(out, simd::exp(_mm256_set1_ps(1000.0f)));  // saturates, finite
  EXPECT_TRUE(std::isfinite(out[0]));
  EXPECT_NEAR(out[0] / std::exp(88.0), 1.0, 1e-6);
}

TEST(Simd, Transpose8x8) {
  std::vector<float> src(8 * 11), dst(8 * 13, -1.0f);
  for (size_t i = 0; i < src.size(); ++i) src[i] = float(i);
  simd::transpose8x8(dst.data(), 13, src.data(), 11);
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 13; ++j) EXPECT_EQ(dst[i * 13 + j], j < 8 ? src[j * 11 + i] : -1.0f) << i << "," << j;
}

// The four-accumulator reductions against double-precision loops, at every length that takes a
// different path (below 8, the 8-wide tail, the 32-wide rounds, the scalar tail), with the
// extreme values placed in the tails and in each accumulator's lanes.
TEST(Simd, RowReductionsMatchPlainLoopsAtEveryTailLength) {
  Rng rng(7);
  for (int64_t n : {1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 40, 63, 64, 65, 100, 256, 257, 3072}) {
    for (int64_t at : {int64_t(0), n / 2, n - 1}) {
      std::vector<float> x(n);
      for (auto& v : x) v = rng.normal() * 3.0f + 1.0f;
      x[at] = 50.0f;  // the maximum, at the start, middle or end
      x[(at + n / 3) % n] = n > 1 ? -40.0f : 50.0f;
      double s = 0, m = 0, ss = 0;
      float lo = x[0], hi = x[0];
      for (float v : x) {
        s += v;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      m = s / double(n);
      for (float v : x) ss += (v - float(m)) * double(v - float(m));
      EXPECT_NEAR(simd::sum(x.data(), n), s, 1e-5 * (std::fabs(s) + 50.0 * n)) << "n " << n;
      EXPECT_NEAR(simd::sum_sq_dev(x.data(), n, float(m)), ss, 1e-5 * (ss + 1.0)) << "n " << n;
      float l = 0, h = 0;
      simd::min_max(x.data(), n, l, h);
      EXPECT_EQ(l, lo) << "n " << n << " at " << at;
      EXPECT_EQ(h, hi) << "n " << n << " at " << at;
      if (n > 1) {  // a NaN anywhere but x[0] is skipped, wherever it falls (as the scalar form)
        for (int64_t nan_at : {int64_t(1), n / 2, n - 1}) {
          std::vector<float> y = x;
          y[nan_at] = std::numeric_limits<float>::quiet_NaN();
          float l2 = 0, h2 = 0, lo2 = y[0], hi2 = y[0];
          for (float v : y) {
            lo2 = v < lo2 ? v : lo2;
            hi2 = v > hi2 ? v : hi2;
          }
          simd::min_max(y.data(), n, l2, h2);
          EXPECT_EQ(l2, lo2) << "n " << n << " NaN at " << nan_at;
          EXPECT_EQ(h2, hi2) << "n " << n << " NaN at " << nan_at;
        }
      }
    }
  }
}
#endif

TEST(ParamSlab, PlacedTensorsMustTileTheSlabExactly) {
  {  // q|k|v-style placement: registration order kept, layout side by side
    nn::ParamSlab ps;
    const int64_t w = ps.reserve(6), b = ps.reserve(2);
    ps.add("q.weight", {3}, nn::Init::Zeros, 0, w);
    ps.add("q.bias", {1}, nn::Init::Zeros, 0, b);
    ps.add("k.weight", {3}, nn::Init::Zeros, 0, w + 3);
    ps.add("k.bias", {1}, nn::Init::Zeros, 0, b + 1);
    ps.add("tail", {2}, nn::Init::Ones);
    EXPECT_NO_THROW(ps.finalize());
    EXPECT_EQ(ps.infos()[1].name, "q.bias");
    EXPECT_EQ(ps.info("k.weight").offset, 3);
    EXPECT_EQ(ps.info("tail").offset, 8);
  }
  {  // a reserved region left partly empty
    nn::ParamSlab ps;
    const int64_t w = ps.reserve(6);
    ps.add("q.weight", {3}, nn::Init::Zeros, 0, w);
    EXPECT_THROW(ps.finalize(), std::runtime_error);
  }
  {  // overlapping placements
    nn::ParamSlab ps;
    const int64_t w = ps.reserve(6);
    ps.add("a", {3}, nn::Init::Zeros, 0, w);
    ps.add("b", {3}, nn::Init::Zeros, 0, w + 2);
    EXPECT_THROW(ps.finalize(), std::runtime_error);
  }
  {  // outside the slab
    nn::ParamSlab ps;
    const int64_t w = ps.reserve(2);
    EXPECT_THROW(ps.add("a", {3}, nn::Init::Zeros, 0, w), std::runtime_error);
  }
}
