// harvit explain's maps (train/explain.h): token -> time geometry through patches and merges (odd
// token counts, a window tail no patch covers), attention rollout (rows are distributions, a
// hand-worked case, the support of each row), the per-window maps of a real forward, and
// explain_checkpoint's pictures and errors (a CNN checkpoint, a bad index).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "nn/checkpoint.h"
#include "nn/cnn.h"
#include "nn/vit.h"
#include "train/explain.h"

using namespace harvit;
namespace fs = std::filesystem;

namespace {

nn::VitConfig odd_cfg() {  // N = 25 patches: 25 -> 13 -> 7 -> 4 tokens, a padded merge each time
  nn::VitConfig c;
  c.T = 102, c.M = 2, c.C = 3, c.P = 4, c.D = 16, c.H = 2, c.A = 8, c.L = 3, c.hidden = 16;
  return c;
}

// Random row-stochastic (n x n) maps, one per block.
std::vector<std::vector<double>> random_maps(const nn::VitConfig& c, uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<double>> A(c.L);
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t n = c.tokens(l);
    A[l].resize(n * n);
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += A[l][i * n + j] = rng.uniform(0.0f, 1.0f) + 1e-3;
      for (int64_t j = 0; j < n; ++j) A[l][i * n + j] /= s;
    }
  }
  return A;
}

}  // namespace

TEST(ExplainGeometry, TokenSpansThroughMerges) {
  const auto c = odd_cfg();
  ASSERT_EQ(c.N(), 25);
  ASSERT_EQ(c.tokens(1), 13);
  ASSERT_EQ(c.tokens(2), 7);
  ASSERT_EQ(c.tokens(3), 4);
  auto span = [&](int64_t l, int64_t j) {
    const auto s = train::token_span(c, l, j);
    return std::make_pair(s.begin, s.end);
  };
  EXPECT_EQ(span(0, 0), std::make_pair(int64_t{0}, int64_t{4}));
  EXPECT_EQ(span(0, 24), std::make_pair(int64_t{96}, int64_t{100}));
  EXPECT_EQ(span(1, 3), std::make_pair(int64_t{24}, int64_t{32}));    // patches 6, 7
  EXPECT_EQ(span(1, 12), std::make_pair(int64_t{96}, int64_t{100}));  // patch 24 and the pad
  EXPECT_EQ(span(2, 5), std::make_pair(int64_t{80}, int64_t{96}));    // patches 20..23
  EXPECT_EQ(span(2, 6), std::make_pair(int64_t{96}, int64_t{100}));
  EXPECT_EQ(span(3, 0), std::make_pair(int64_t{0}, int64_t{32}));     // 8 patches
  EXPECT_EQ(span(3, 2), std::make_pair(int64_t{64}, int64_t{96}));
  EXPECT_EQ(span(3, 3), std::make_pair(int64_t{96}, int64_t{100}));   // only patch 24 is real
  // every level tiles [0, N*P) without gaps or overlaps
  for (int64_t l = 0; l <= c.L; ++l) {
    int64_t next = 0;
    for (int64_t j = 0; j < c.tokens(l); ++j) {
      const auto s = train::token_span(c, l, j);
      EXPECT_EQ(s.begin, next) << "block " << l << " token " << j;
      EXPECT_GT(s.end, s.begin);
      next = s.end;
    }
    EXPECT_EQ(next, c.N() * c.P) << "block " << l;
  }
  EXPECT_THROW(train::token_span(c, 1, 13), std::exception);
  EXPECT_THROW(train::token_span(c, 4, 0), std::exception);
}

TEST(ExplainGeometry, ToTimeSpreadsTokensAndLeavesTheTailEmpty) {
  const auto c = odd_cfg();  // T = 102: samples 100, 101 belong to no patch
  std::vector<double> v(c.M * c.tokens(2));
  for (size_t i = 0; i < v.size(); ++i) v[i] = double(i + 1);
  const auto t = train::to_time(c, 2, v);
  ASSERT_EQ(int64_t(t.size()), c.M * c.T);
  const double n = c.tokens(2);
  EXPECT_DOUBLE_EQ(t[0], 1 * n);         // axis 0, token 0 covers samples 0..15
  EXPECT_DOUBLE_EQ(t[15], 1 * n);
  EXPECT_DOUBLE_EQ(t[16], 2 * n);
  EXPECT_DOUBLE_EQ(t[99], 7 * n);        // token 6: samples 96..99
  EXPECT_TRUE(std::isnan(t[100]));
  EXPECT_TRUE(std::isnan(t[101]));
  EXPECT_DOUBLE_EQ(t[c.T + 0], 8 * n);   // axis 1
  EXPECT_DOUBLE_EQ(t[c.T + 99], 14 * n);
  EXPECT_TRUE(std::isnan(t[c.T + 101]));
  EXPECT_THROW(train::to_time(c, 1, v), std::exception);  // wrong token count for block 1
}

TEST(ExplainRollout, RowsAreDistributionsOverPatches) {
  for (const auto& c : {odd_cfg(), nn::VitConfig{}}) {
    const auto R = train::rollout_matrix(c, random_maps(c, 5));
    const int64_t N = c.N(), nL = c.tokens(c.L);
    ASSERT_EQ(int64_t(R.size()), nL * N);
    for (int64_t j = 0; j < nL; ++j) {
      double s = 0;
      for (int64_t p = 0; p < N; ++p) {
        EXPECT_GE(R[j * N + p], 0.0);
        s += R[j * N + p];
      }
      EXPECT_NEAR(s, 1.0, 1e-12) << "row " << j;
    }
  }
}

TEST(ExplainRollout, IdentityAttentionKeepsEachTokenOnItsOwnPatches) {
  // Tokens attending only to themselves: every output token's row is uniform over exactly the
  // patches token_span says it covers (for the padded last token: weight 1 on its one patch).
  const auto c = odd_cfg();
  std::vector<std::vector<double>> A(c.L);
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t n = c.tokens(l);
    A[l].assign(n * n, 0.0);
    for (int64_t i = 0; i < n; ++i) A[l][i * n + i] = 1.0;
  }
  const auto R = train::rollout_matrix(c, A);
  const int64_t N = c.N();
  for (int64_t j = 0; j < c.tokens(c.L); ++j) {
    const auto s = train::token_span(c, c.L, j);
    const int64_t p0 = s.begin / c.P, p1 = s.end / c.P;
    for (int64_t p = 0; p < N; ++p)
      EXPECT_NEAR(R[j * N + p], (p >= p0 && p < p1) ? 1.0 / double(p1 - p0) : 0.0, 1e-12) << j << "," << p;
  }
}

TEST(ExplainRollout, HandWorkedTwoBlocks) {
  // N = 4 patches, L = 2. Block 0: every query attends to key 0 only; block 1 (2 tokens): query 0
  // attends to key 1, query 1 to itself.
  //   Ahat0 rows: 0.5 e0 + 0.5 ei -> [1,0,0,0], [.5,.5,0,0], [.5,0,.5,0], [.5,0,0,.5]
  //   merge: t0 = [.75,.25,0,0], t1 = [.5,0,.25,.25]
  //   Ahat1: u0 = .5 t0 + .5 t1 = [.625,.125,.125,.125], u1 = t1
  //   merge (one token): [.5625, .0625, .1875, .1875]
  nn::VitConfig c;
  c.T = 16, c.P = 4, c.L = 2;
  std::vector<std::vector<double>> A(2);
  A[0].assign(16, 0.0);
  for (int i = 0; i < 4; ++i) A[0][i * 4 + 0] = 1.0;
  A[1] = {0, 1, 0, 1};
  const auto R = train::rollout_matrix(c, A);
  ASSERT_EQ(R.size(), 4u);
  const double want[4] = {0.5625, 0.0625, 0.1875, 0.1875};
  for (int p = 0; p < 4; ++p) EXPECT_DOUBLE_EQ(R[p], want[p]) << p;
}

TEST(ExplainMaps, RealForwardGivesDistributions) {
  const auto c = odd_cfg();
  nn::Vit vit(c);
  const int64_t B = 3;
  std::vector<float> x(B * c.T * c.M);
  Rng rng(2);
  for (float& v : x) v = rng.normal();
  vit.forward(x.data(), B);
  for (int64_t b = 0; b < B; ++b) {
    const auto maps = train::attention_maps(vit, b);
    ASSERT_EQ(int64_t(maps.received.size()), c.L);
    for (int64_t m = 0; m < c.M; ++m) {
      for (int64_t l = 0; l < c.L; ++l) {
        const int64_t n = c.tokens(l);
        double s = 0;
        for (int64_t j = 0; j < n; ++j) s += maps.received[l][m * n + j];
        EXPECT_NEAR(s, 1.0, 1e-5) << "block " << l << " axis " << m;
      }
      double s = 0;
      for (int64_t p = 0; p < c.N(); ++p) s += maps.rollout[m * c.N() + p];
      EXPECT_NEAR(s, 1.0, 1e-5) << "rollout, axis " << m;
    }
    // window b's maps are its own: the head average of group b*M + m
    const auto a = train::head_average(c, vit.attention(1), 1, b * c.M + 1);
    const int64_t n = c.tokens(1);
    for (int64_t j = 0; j < n; ++j) {
      double col = 0;
      for (int64_t i = 0; i < n; ++i) col += a[i * n + j] / double(n);
      EXPECT_NEAR(maps.received[1][1 * n + j], col, 1e-12);
    }
  }
  EXPECT_THROW(train::attention_maps(vit, B), std::exception);
}

namespace {

data::Dataset toy(const nn::VitConfig& c, int n) {
  data::Dataset ds;
  ds.name = "toy";
  ds.T = c.T, ds.M = c.M;
  ds.class_names = {"a", "b", "c"};
  ds.axis_names = {"acc_x", "acc_y"};
  Rng rng(4);
  for (int i = 0; i < n; ++i) {
    for (int64_t k = 0; k < c.T * c.M; ++k) ds.x.push_back(rng.normal());
    ds.y.push_back(i % 3);
    ds.subject.push_back(i % 4);
    ds.run.push_back(i);
    ds.pos.push_back(0);
    ds.split.push_back(i % 4 == 3 ? data::kTest : i % 4 == 2 ? data::kVal : data::kTrain);
  }
  ds.info = {{"given_split", false}};
  data::fit_normalize(ds);
  return ds;
}

}  // namespace

TEST(ExplainCheckpoint, DrawsPicturesAndRefusesBadRequests) {
  const auto c = odd_cfg();
  const auto ds = toy(c, 40);  // 10 test windows
  const fs::path dir = fs::temp_directory_path() / ("harvit_explain_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  nn::Vit vit(c);
  nn::CheckpointMeta meta;
  meta.class_names = ds.class_names;
  meta.normalization = {{"mean", ds.mean}, {"std", ds.std}};
  const std::string ck = (dir / "vit.safetensors").string();
  nn::save_checkpoint(ck, vit, meta);

  train::ExplainOptions o;
  o.out_dir = (dir / "out").string();
  o.indices = {0, 9};
  o.errors = 2;
  const auto wins = train::explain_checkpoint(ck, ds, o);
  ASSERT_GE(wins.size(), 2u);
  EXPECT_EQ(wins[0].split_index, 0);
  EXPECT_EQ(wins[1].split_index, 9);
  EXPECT_EQ(wins[1].file_index, ds.indices(data::kTest)[9]);
  int errors = 0;
  for (const auto& w : wins) {
    EXPECT_TRUE(fs::exists(w.png) && fs::file_size(w.png) > 1000) << w.png;
    std::ifstream f(w.png, std::ios::binary);
    char sig[4] = {};
    f.read(sig, 4);
    EXPECT_EQ(std::string(sig + 1, 3), "PNG") << w.png;
    if (w.why == "error") {
      ++errors;
      EXPECT_NE(w.pred, w.truth);
    }
    EXPECT_GT(w.prob, 1.0f / 3 - 1e-6);
  }
  EXPECT_EQ(errors, 2);  // an untrained model on 3 balanced classes errs on most windows
  const auto j = nlohmann::json::parse(std::ifstream(o.out_dir + "/explain.json"));
  ASSERT_EQ(j["windows"].size(), wins.size());
  EXPECT_EQ(j["windows"][0]["rollout"].size(), size_t(c.M * c.N()));

  // a bad index names the split and its range
  o.indices = {10};
  o.errors = 0;
  try {
    train::explain_checkpoint(ck, ds, o);
    ADD_FAILURE() << "index 10 of 10 test windows accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("indices 0..9"), std::string::npos) << e.what();
  }
  o.indices = {-1};
  EXPECT_THROW(train::explain_checkpoint(ck, ds, o), std::exception);
  o.indices = {};
  EXPECT_THROW(train::explain_checkpoint(ck, ds, o), std::exception);  // nothing chosen

  // a CNN checkpoint
  nn::CnnConfig cc;
  cc.T = c.T, cc.M = c.M, cc.C = c.C, cc.channels = {4};
  nn::Cnn cnn(cc);
  const std::string ckc = (dir / "cnn.safetensors").string();
  nn::save_checkpoint(ckc, cnn, meta);
  o.indices = {0};
  try {
    train::explain_checkpoint(ckc, ds, o);
    ADD_FAILURE() << "a CNN checkpoint accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("explain needs a ViT"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
