// Int8 inference (deploy/quantize.h): each int8 linear layer against its fp32 product within the
// quantisation error bound, the whole int8 ViT against the fp32 ViT, and the clear failures.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/int8_gemm.h"
#include "core/stages.h"
#include "core/threading.h"
#include "deploy/quantize.h"
#include "fixture_util.h"
#include "nn/cnn.h"
#include "nn/layers.h"

using namespace harvit;

namespace {

// |int8 - fp32| per output, bounded by the rounding of both operands: each product x_i w_i is
// off by at most |x_i| ds_w/2 + |w_i| ds_x/2 + ds_x ds_w / 4 (ds = one quantisation step).
void check_linear(bool nonneg, uint64_t seed, int64_t R, int64_t IN, int64_t OUT) {
  Rng rng(seed);
  std::vector<float> x(R * IN), w(OUT * IN), b(OUT), want(R * OUT), got(R * OUT);
  for (auto& v : x) v = nonneg ? std::fabs(rng.normal()) : rng.normal();
  for (auto& v : w) v = 0.1f * rng.normal();
  for (auto& v : b) v = rng.normal();
  nn::linear_forward(want.data(), x.data(), w.data(), b.data(), R, IN, OUT);
  Int8Gemm q(w.data(), b.data(), IN, OUT);
  q.forward(got.data(), x.data(), R);
  for (int64_t r = 0; r < R; ++r) {
    float xm = 0;
    for (int64_t i = 0; i < IN; ++i) xm = std::max(xm, std::fabs(x[r * IN + i]));
    const double dx = xm / (nonneg ? 255.0 : 127.0);
    for (int64_t o = 0; o < OUT; ++o) {
      float wm = 0;
      for (int64_t i = 0; i < IN; ++i) wm = std::max(wm, std::fabs(w[o * IN + i]));
      const double dw = wm / 63.0;
      double bound = 0;
      for (int64_t i = 0; i < IN; ++i)
        bound += std::fabs(x[r * IN + i]) * dw / 2 + std::fabs(w[o * IN + i]) * dx / 2 + dx * dw / 4;
      ASSERT_LE(std::fabs(got[r * OUT + o] - want[r * OUT + o]), bound * 1.01 + 1e-5)
          << (nonneg ? "non-negative" : "signed") << " input, row " << r << " output " << o;
    }
  }
}

}  // namespace

TEST(Int8, LinearWithinTheQuantisationBound) {
  // Widths that leave tails in every tile dimension of the AVX2 kernel (1 row x 64 outputs in
  // blocks of 8, inputs in groups of 4), batch-1 shapes, and over 128 rows (oneDNN's GEMM).
  for (auto [R, IN, OUT] : {std::tuple<int64_t, int64_t, int64_t>{37, 96, 50}, {5, 97, 13}, {7, 33, 20}, {9, 40, 100},
                            {3, 256, 768}, {1, 3072, 1024}, {96, 256, 768}, {200, 64, 24}, {131, 33, 70}}) {
    ASSERT_EQ(Int8Gemm::use_own_kernel(R), R <= 128 && Int8Gemm::use_own_kernel(1));
    check_linear(true, 1, R, IN, OUT);
    check_linear(false, 2, R, IN, OUT);
  }
  std::printf("int8 kernel: %s\n", Int8Gemm::kernel_summary().c_str());
}

// Every int8 kernel (one per instruction set, chosen at run time) gives bit-identical outputs to
// the AVX2 kernel for the same inputs: exact int32 sums, the same float operations in the store.
// Shapes leave tails in every dimension of every kernel's tile (rows, output blocks of 8 and 16,
// input groups of 4) and include the batch-1 layers of the seed ViT.
class Int8Kernels : public ::testing::TestWithParam<Int8Isa> {};

TEST_P(Int8Kernels, BitIdenticalToAvx2) {
  const Int8Isa isa = GetParam();
  if (!Int8Gemm::supported(Int8Isa::Avx2)) GTEST_SKIP() << "this CPU lacks AVX2 (or HARVIT_ISA hides it)";
  if (!Int8Gemm::supported(isa))
    GTEST_SKIP() << "this CPU lacks " << Int8Gemm::isa_name(isa) << " (or HARVIT_ISA hides it): kernel not run";
  if (!Int8Gemm::use_own_kernel(1)) GTEST_SKIP() << "HARVIT_INT8_KERNEL=onednn: harvit's kernels not used";
  Rng rng(11);
  int64_t compared = 0;
  for (auto [R, IN, OUT] : {std::tuple<int64_t, int64_t, int64_t>{1, 3072, 1024}, {96, 256, 768}, {48, 512, 256},
                            {37, 97, 50}, {5, 33, 13}, {7, 40, 100}, {128, 64, 272}, {3, 4, 1}, {17, 64, 16},
                            {9, 130, 200}}) {
    std::vector<float> x(R * IN), w(OUT * IN), b(OUT), want(R * OUT), got(R * OUT, -1.0f);
    for (auto& v : w) v = 0.1f * rng.normal();
    for (auto& v : b) v = rng.normal();
    for (int64_t r = 0; r < R; ++r)  // non-negative and signed rows (zero points 0 and 128)
      for (int64_t i = 0; i < IN; ++i) x[r * IN + i] = r % 3 == 0 ? std::fabs(rng.normal()) : rng.normal();
    Int8Gemm ref(w.data(), b.data(), IN, OUT, Int8Isa::Avx2), q(w.data(), b.data(), IN, OUT, isa);
    ASSERT_EQ(q.isa(), isa);
    ref.forward(want.data(), x.data(), R);
    q.forward(got.data(), x.data(), R);
    for (int64_t i = 0; i < R * OUT; ++i) {
      ASSERT_EQ(std::memcmp(&got[i], &want[i], sizeof(float)), 0)
          << Int8Gemm::isa_name(isa) << " R=" << R << " IN=" << IN << " OUT=" << OUT << " row " << i / OUT
          << " output " << i % OUT << ": " << got[i] << " vs AVX2 " << want[i];
      ++compared;
    }
  }
  EXPECT_GT(compared, 100000);
}

INSTANTIATE_TEST_SUITE_P(EachIsa, Int8Kernels,
                         ::testing::Values(Int8Isa::Avx2, Int8Isa::AvxVnni, Int8Isa::Avx512, Int8Isa::Avx512Vnni),
                         [](const ::testing::TestParamInfo<Int8Isa>& i) {
                           switch (i.param) {
                             case Int8Isa::Avx2: return "Avx2";
                             case Int8Isa::AvxVnni: return "AvxVnni";
                             case Int8Isa::Avx512: return "Avx512BW";
                             case Int8Isa::Avx512Vnni: return "Avx512Vnni";
                             default: return "None";
                           }
                         });

// The kernel chosen by default is the best the CPU has, and a kernel the CPU lacks is refused by
// name instead of crashing on an illegal instruction.
TEST(Int8, DefaultKernelIsTheBestSupportedAndMissingOnesAreRefused) {
  Int8Isa best = Int8Isa::None;
  for (Int8Isa i : {Int8Isa::Avx512Vnni, Int8Isa::AvxVnni, Int8Isa::Avx512, Int8Isa::Avx2})
    if (best == Int8Isa::None && Int8Gemm::supported(i)) best = i;
  EXPECT_EQ(Int8Gemm::best(), best);
  const std::vector<float> w(8 * 4, 0.5f), b(8, 0.0f);
  EXPECT_EQ(Int8Gemm(w.data(), b.data(), 4, 8).isa(), best);
  for (Int8Isa i : {Int8Isa::Avx2, Int8Isa::AvxVnni, Int8Isa::Avx512, Int8Isa::Avx512Vnni})
    if (!Int8Gemm::supported(i)) {
      try {
        Int8Gemm(w.data(), b.data(), 4, 8, i);
        ADD_FAILURE() << "no error for " << Int8Gemm::isa_name(i);
      } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find(Int8Gemm::isa_name(i)), std::string::npos) << e.what();
      }
    }
}

// A row's quantisation (scale and zero point) is its own: a non-negative row keeps its 256 levels
// next to signed rows, and gives the same outputs alone as in any batch - bit for bit through
// harvit's kernel (up to 128 rows), to float rounding through oneDNN's (more rows).
TEST(Int8, EachRowIsQuantisedOnItsOwn) {
  Rng rng(5);
  const int64_t IN = 70, OUT = 40;
  std::vector<float> w(OUT * IN), b(OUT);
  for (auto& v : w) v = 0.1f * rng.normal();
  for (auto& v : b) v = rng.normal();
  Int8Gemm q(w.data(), b.data(), IN, OUT);
  for (int64_t R : {9, 300}) {
    std::vector<float> x(R * IN), all(R * OUT), alone(OUT);
    for (int64_t i = 0; i < R * IN; ++i) x[i] = i < IN ? std::fabs(rng.normal()) : rng.normal();  // row 0 >= 0
    q.forward(all.data(), x.data(), R);
    for (int64_t r : {int64_t{0}, R - 1}) {
      q.forward(alone.data(), x.data() + r * IN, 1);
      for (int64_t o = 0; o < OUT; ++o) {
        if (Int8Gemm::use_own_kernel(R))
          ASSERT_EQ(all[r * OUT + o], alone[o]) << "R=" << R << " row " << r << " output " << o;
        else
          ASSERT_NEAR(all[r * OUT + o], alone[o], 1e-5 * (1 + std::fabs(alone[o]))) << "R=" << R << " row " << r;
      }
    }
  }
}

// A fixture-initialised fp32 ViT (as in the PyTorch parity test), a fixture batch, the fp32
// logits, the int8 model, and the int8 logits compared with the fp32 ones.
struct Int8VsFp32 {
  nn::Vit fp;
  std::vector<float> x, want;
  std::unique_ptr<nn::Model> q;
  test::Diff d;
  Int8VsFp32(const nn::VitConfig& cfg, uint64_t seed, int64_t B) : fp(cfg) {
    test::fixture_params(fp, seed);
    std::vector<int32_t> y;
    test::fixture_batch(cfg, seed, 1000, B, x, y);
    const float* logits = fp.forward(x.data(), B);
    want.assign(logits, logits + B * cfg.C);
    q = deploy::convert_precision(fp, "int8");
    if (!q) throw std::runtime_error("no int8 model");
    d = test::compare(q->forward(x.data(), B), want.data(), want.size());
    std::printf("int8 vs fp32 logits (T=%lld): max|diff| %.3g (rel %.3g)\n", (long long)cfg.T, d.max_abs, d.rel());
  }
};

TEST(Int8, VitLogitsCloseToFp32) {
  const nn::VitConfig cfg;  // the seed config
  Int8VsFp32 t(cfg, 7, 16);
  // Measured 0.034 on this random-init model (small logits, about 0.66 at most); a wrong zero
  // point, scale or layout gives errors of the order of the logits themselves. On a trained
  // model the labels are what matters: 99.96 % equal to fp32 on the WISDM test split.
  EXPECT_LT(t.d.rel(), 0.06);
  // A batch of 1 sees the same per-row scales, so it gives the same logits as row 0 of the batch.
  const float* one = t.q->forward(t.x.data(), 1);
  for (int64_t c = 0; c < cfg.C; ++c) EXPECT_NEAR(one[c], t.want[c], 0.06 * t.d.max_ref);
  EXPECT_THROW(t.q->backward_from_logits(t.want.data()), std::runtime_error);
}

// Odd token counts (T = 100: 25 -> 13 -> 7 tokens) take the padded patch-merge copy (measured
// rel 0.013; 0.52 with the padding skipped).
TEST(Int8, OddTokenCountsCloseToFp32) {
  nn::VitConfig cfg;
  cfg.T = 100; cfg.M = 6; cfg.C = 12; cfg.D = 64; cfg.H = 3; cfg.A = 24; cfg.hidden = 96;
  EXPECT_LT(Int8VsFp32(cfg, 8, 5).d.rel(), 0.06);
}

TEST(Int8, ClearFailures) {
  nn::Vit fp(nn::VitConfig{});
  EXPECT_EQ(deploy::convert_precision(fp, "fp32"), nullptr);
  try {
    deploy::convert_precision(fp, "fp8");
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("fp8"), std::string::npos) << e.what();
  }
}

// The CNN's conv layers run int8 through the same nn::Linear as the ViT's: logits close to fp32,
// the fp32 model untouched, and no training of the int8 copy.
TEST(Int8, CnnConvLayersCloseToFp32) {
  nn::CnnConfig cfg;
  cfg.M = 6;
  nn::Cnn fp(cfg);
  Rng rng(4);
  const int64_t B = 8;
  std::vector<float> x(B * cfg.T * cfg.M);
  for (auto& v : x) v = rng.normal();
  const std::vector<float> want(fp.forward(x.data(), B), fp.forward(x.data(), B) + B * cfg.C);
  auto q = deploy::convert_precision(fp, "int8");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->precision(), nn::Precision::Int8);
  EXPECT_EQ(fp.precision(), nn::Precision::Fp32);
  const float* got = q->forward(x.data(), B);
  const auto d = test::compare(got, want.data(), want.size());
  EXPECT_LT(d.rel(), 0.06);
  EXPECT_GT(d.max_abs, 0.0);  // really int8: not the fp32 path
  std::vector<int32_t> y(B, 1);
  q->loss(y.data());
  try {
    q->backward(y.data());
    FAIL() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("inference only"), std::string::npos) << e.what();
  }
}

// Models prepared for inference (Model::prepare_inference): fp32 forwards of a few windows run
// over packed weight panels shared among the pool's threads instead of oneDNN's sgemm. Same
// logits as the unprepared model (another summation order: within 1e-5 of the largest logit)
// at 1, 2 and 3 threads, and after the weights change and params_changed(), the new weights'
// logits (panels packed again), not the old ones'.
template <class M, class Cfg>
void check_prepared_inference(const Cfg& cfg, uint64_t seed) {
  M plain(cfg), prepared(cfg);
  if constexpr (std::is_same_v<M, nn::Vit>) test::fixture_params(plain, seed);  // the CNN: its own init
  std::memcpy(prepared.params().values(), plain.params().values(), plain.params().count() * sizeof(float));
  prepared.prepare_inference();
  const int64_t W = cfg.T * cfg.M, C = cfg.C;
  Rng rng(seed);
  std::vector<float> x(3 * W);
  for (auto& v : x) v = rng.normal();
  const int threads_before = num_threads();
  auto check_equal = [&](const char* what) {
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      for (int64_t w = 0; w < 3; ++w) {
        const float* want = plain.forward(x.data() + w * W, 1);
        std::vector<float> ref(want, want + C);
        const test::Diff d = test::compare(prepared.forward(x.data() + w * W, 1), ref.data(), C);
        EXPECT_LE(d.max_abs, 1e-5 * std::max(1.0, d.max_ref)) << what << ", " << threads << " threads, window " << w;
      }
    }
  };
  check_equal("as initialised");
  // a training step's worth of change, told as the trainer tells it
  for (M* m : {&plain, &prepared}) {
    float* v = m->params().values();
    for (int64_t i = 0; i < m->params().count(); ++i) v[i] = v[i] * 0.9f + 0.01f * std::sin(float(i));
    m->params_changed();
  }
  check_equal("after params_changed");
  set_num_threads(threads_before);
}

TEST(PackedInference, VitBatch1EqualsOneDnnAtAnyThreadCount) {
  nn::VitConfig cfg;  // the seed shape: every layer's R is at most 96 rows at batch 1
  check_prepared_inference<nn::Vit>(cfg, 21);
  // partial panels, every layer on the packed path (block 0: 3 axes x 25 tokens = 75 rows), and a
  // dense layer of 100 outputs = four 32-wide panels, the last partial (the GEMV's 4-panel group)
  cfg.T = 100; cfg.M = 3; cfg.C = 12; cfg.D = 64; cfg.H = 3; cfg.A = 24; cfg.hidden = 100;
  check_prepared_inference<nn::Vit>(cfg, 22);
}

TEST(PackedInference, CnnBatch1EqualsOneDnnAtAnyThreadCount) {
  nn::CnnConfig cfg;
  check_prepared_inference<nn::Cnn>(cfg, 23);
}

// A forward of a few windows for inference runs the blocks as a team (Vit::team_threads): each
// thread its own share of the token rows, groups split between neighbouring threads at
// last-level token boundaries, one barrier per block. Every logit and attention probability has
// the bits of the serial forward, for fp32 (packed panels) and int8, at 2-4 threads, over batches
// whose rows split mid-group, and with odd token counts (the padded merge).
TEST(Team, VitForwardGivesTheSerialBitsAtAnyThreadCount) {
  nn::VitConfig odd;
  odd.T = 100; odd.M = 3; odd.C = 12; odd.D = 64; odd.H = 3; odd.A = 24; odd.hidden = 100;  // 25 -> 13 -> 7 -> 4
  nn::VitConfig nine;
  nine.T = 64; nine.M = 9; nine.D = 32; nine.H = 2; nine.A = 16; nine.hidden = 64;
  const int threads_before = num_threads();
  int64_t checked = 0;
  for (const nn::VitConfig& cfg : {nn::VitConfig{}, odd, nine}) {
    nn::Vit fp(cfg);
    test::fixture_params(fp, 31);
    fp.prepare_inference();
    auto q = deploy::convert_precision(fp, "int8");
    ASSERT_NE(q, nullptr);
    q->prepare_inference();  // its fp32 head too (as deploy::Classifier does)
    const int64_t W = cfg.T * cfg.M;
    Rng rng(32);
    std::vector<float> x(5 * W), other(5 * W);
    for (auto& v : x) v = rng.normal();
    for (auto& v : other) v = rng.normal();
    for (nn::Model* m : {static_cast<nn::Model*>(&fp), q.get()}) {
      auto* vit = dynamic_cast<nn::Vit*>(m);
      ASSERT_NE(vit, nullptr);
      for (int64_t B : {1, 2, 5}) {
        std::vector<float> want, want_att;
        {
          SerialScope serial;
          const float* l = m->forward(x.data(), B);
          want.assign(l, l + B * cfg.C);
          const int64_t n = cfg.tokens(1);  // block 1's attention (n queries x n keys per pair)
          want_att.assign(vit->attention(1), vit->attention(1) + B * cfg.M * cfg.H * n * n);
        }
        for (int threads : {2, 3, 4}) {
          {  // every buffer now holds another input's values: a row the team skips cannot pass
            SerialScope serial;
            m->forward(other.data(), B);
          }
          set_num_threads(threads);
          stages::clear();
          stages::enable(true);
          const float* got = m->forward(x.data(), B);
          stages::enable(false);
          bool barrier = false;  // the team path ran (its stage table has the blocks' barriers)
          for (const auto& r : stages::table()) barrier = barrier || r.name == "block 0 barrier";
          stages::clear();
          const std::string what = std::string(nn::precision_name(m->precision())) + " T=" + std::to_string(cfg.T) +
                                   " M=" + std::to_string(cfg.M) + " B=" + std::to_string(B) + ", " +
                                   std::to_string(threads) + " threads";
          ASSERT_TRUE(barrier) << what << ": not the team path";
          ASSERT_EQ(std::memcmp(got, want.data(), want.size() * sizeof(float)), 0) << what;
          ASSERT_EQ(std::memcmp(vit->attention(1), want_att.data(), want_att.size() * sizeof(float)), 0) << what;
          ++checked;
        }
        set_num_threads(threads_before);
      }
    }
  }
  EXPECT_EQ(checked, 3 * 2 * 3 * 3);
  // the team's stages: thread 0's share, a barrier per block, the join
  set_num_threads(2);
  nn::Vit fp(nn::VitConfig{});
  test::fixture_params(fp, 33);
  fp.prepare_inference();
  std::vector<float> x(128 * 3, 0.5f);
  stages::clear();
  stages::enable(true);
  fp.forward(x.data(), 1);
  stages::enable(false);
  std::vector<std::string> names;
  for (const auto& r : stages::table()) names.push_back(r.name);
  set_num_threads(threads_before);
  stages::clear();
  ASSERT_EQ(names.size(), 1u + 7u * 3 + 1 + 2);
  EXPECT_EQ(names[1], "block 0 q|k|v");
  EXPECT_EQ(names[2], "block 0 barrier");
  EXPECT_EQ(names[22], "blocks: join");
}

// bench_infer --stages: a forward marks every stage once, in order, on the calling thread's table,
// only while recording is on; the stages' times never add up to more than the forwards took.
TEST(Stages, VitForwardMarksEveryStageOnceWhileEnabled) {
  nn::VitConfig cfg;
  cfg.T = 64; cfg.D = 32; cfg.H = 2; cfg.A = 16; cfg.hidden = 64;  // 3 blocks, small
  nn::Vit vit(cfg);
  test::fixture_params(vit, 5);
  std::vector<float> x(cfg.T * cfg.M, 0.5f);
  stages::clear();
  vit.forward(x.data(), 1);
  EXPECT_TRUE(stages::table().empty()) << "recorded while disabled";
  stages::enable(true);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) vit.forward(x.data(), 1);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stages::enable(false);
  vit.forward(x.data(), 1);  // not counted
  const auto& t = stages::table();
  ASSERT_EQ(t.size(), 1u + 6u * cfg.L + 2u);
  EXPECT_EQ(t.front().name, "patch embedding");
  EXPECT_EQ(t[1].name, "block 0 q|k|v");
  EXPECT_EQ(t[6].name, "block 0 LayerNorm 2");
  EXPECT_EQ(t[7].name, "block 1 q|k|v");
  EXPECT_EQ(t.back().name, "head LayerNorm + dense_tower.3");
  double sum = 0;
  for (const auto& r : t) {
    EXPECT_EQ(r.count, 3) << r.name;
    EXPECT_GE(r.seconds, 0.0) << r.name;
    sum += r.seconds;
  }
  EXPECT_LE(sum, wall);
  stages::clear();
  EXPECT_TRUE(stages::table().empty());
}
