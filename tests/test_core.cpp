#include <gtest/gtest.h>

#include <vector>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/tensor.h"
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
