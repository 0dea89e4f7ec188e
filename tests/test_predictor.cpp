// deploy::Predictor on a RawData built here: which windows it cuts (count, starts, stride,
// timestamps, truth by class name), that the checkpoint's normalisation is applied, and that its
// probabilities and labels are the model's own on the normalised window.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.h"
#include "deploy/predictor.h"
#include "fixture_util.h"
#include "nn/checkpoint.h"
#include "nn/vit.h"

using namespace harvit;
namespace fs = std::filesystem;

namespace {

nn::VitConfig tiny() {
  nn::VitConfig c;
  c.T = 16; c.M = 3; c.C = 4; c.P = 4; c.D = 16; c.H = 2; c.A = 8; c.L = 2; c.hidden = 32;
  return c;
}

// Sensor-like units: each axis far from zero mean / unit std, so that skipping the z-score
// feeds the model inputs of a very different scale.
const std::vector<float> kMean = {9.0f, -4.0f, 2.5f}, kStd = {3.0f, 0.5f, 6.0f};

data::RawStream stream(const std::string& source, int32_t subject, int64_t n, Rng& rng, bool with_time,
                       std::vector<int32_t> labels) {
  data::RawStream s;
  s.source = source;
  s.subject = subject;
  for (int64_t t = 0; t < n; ++t) {
    for (int m = 0; m < 3; ++m) s.values.push_back(kMean[m] + kStd[m] * (std::sin(0.3f * t + m) + 0.5f * rng.normal()));
    if (with_time) s.time_ns.push_back(1'000'000'000LL + t * 50'000'000LL);
  }
  s.label = std::move(labels);
  s.label.resize(n, -1);
  return s;
}

struct PredictorTest : ::testing::Test {
  fs::path dir;
  nn::VitConfig cfg = tiny();
  std::unique_ptr<nn::Vit> model;
  data::RawData raw;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("harvit_predictor_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
    model = std::make_unique<nn::Vit>(cfg);
    test::fixture_params(*model, 11);
    // Recording classes in another order than the model's, one the model does not know.
    raw.name = "built-in-test";
    raw.class_names = {"c", "unknown", "a"};
    raw.axis_names = {"x", "y", "z"};
    Rng rng(4);
    // 40 samples, all "c" except samples 8..20 "a": windows at 0, 8, 16, 24 (stride 8).
    std::vector<int32_t> l1(40, 0);
    for (int t = 8; t <= 20; ++t) l1[t] = 2;
    raw.streams.push_back(stream("s1", 7, 40, rng, true, l1));
    raw.streams.push_back(stream("s2", 3, 15, rng, false, {}));                        // too short: none
    raw.streams.push_back(stream("s3", 5, 33, rng, false, std::vector<int32_t>(33, 1)));  // unknown class
    raw.streams.push_back(stream("s4", 9, 16, rng, false, {}));                         // exactly one, unlabelled
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string save(bool with_norm) {
    nn::CheckpointMeta meta;
    meta.class_names = {"a", "b", "c", "d"};
    if (with_norm) meta.normalization = {{"mean", kMean}, {"std", kStd}};
    const std::string p = (dir / (with_norm ? "norm.safetensors" : "plain.safetensors")).string();
    nn::save_checkpoint(p, *model, meta);
    return p;
  }
  // The model's own probabilities for the window of `st` at `start`, z-scored with mean/std here
  // (not through data::normalize_windows) when `norm`.
  std::vector<float> reference(const data::RawStream& st, int64_t start, bool norm) {
    std::vector<float> x(st.values.begin() + start * cfg.M, st.values.begin() + (start + cfg.T) * cfg.M);
    if (norm)
      for (int64_t t = 0; t < cfg.T; ++t)
        for (int64_t m = 0; m < cfg.M; ++m) x[t * cfg.M + m] = (x[t * cfg.M + m] - kMean[m]) / kStd[m];
    const float* logits = model->forward(x.data(), 1);
    std::vector<float> p(logits, logits + cfg.C);
    const float mx = *std::max_element(p.begin(), p.end());
    double s = 0;
    for (auto& v : p) s += (v = std::exp(v - mx));
    for (auto& v : p) v = static_cast<float>(v / s);
    return p;
  }
};

int64_t argmax(const std::vector<float>& p) { return std::max_element(p.begin(), p.end()) - p.begin(); }

}  // namespace

TEST_F(PredictorTest, WindowsStartsStrideAndTruth) {
  deploy::Predictor pr(save(true));
  EXPECT_EQ(pr.window(), 16);
  EXPECT_EQ(pr.axes(), 3);
  EXPECT_EQ(pr.class_names(), (std::vector<std::string>{"a", "b", "c", "d"}));
  auto out = pr.predict(raw, 8);
  // s1: (40 - 16) / 8 + 1 = 4; s2: none; s3: (33 - 16) / 8 + 1 = 3; s4: 1.
  ASSERT_EQ(out.size(), 8u);
  const std::vector<std::string> src = {"s1", "s1", "s1", "s1", "s3", "s3", "s3", "s4"};
  const std::vector<int64_t> start = {0, 8, 16, 24, 0, 8, 16, 0};
  const std::vector<int32_t> subject = {7, 7, 7, 7, 5, 5, 5, 9};
  // Majority of the window's labels, in the checkpoint's indexing: "c" = 2, "a" = 0; s1's window
  // at 8 (samples 8..23) has 13 "a" and 3 "c"; the window at 16 (16..31) 5 "a", 11 "c".
  const std::vector<int32_t> truth = {2, 0, 2, 2, -1, -1, -1, -1};
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].source, src[i]) << i;
    EXPECT_EQ(out[i].start, start[i]) << i;
    EXPECT_EQ(out[i].subject, subject[i]) << i;
    EXPECT_EQ(out[i].truth, truth[i]) << i;
    EXPECT_EQ(out[i].start_time_ns, i < 4 ? 1'000'000'000LL + start[i] * 50'000'000LL : -1) << i;
  }
  // Stride 16 over s1: windows at 0 and 16 only; a stride longer than the window skips samples.
  auto wide = pr.predict(raw, 16);
  ASSERT_EQ(wide.size(), 2u + 2u + 1u);
  EXPECT_EQ(wide[1].start, 16);
  EXPECT_EQ(pr.predict(raw, 20).size(), 2u + 1u + 1u);
}

TEST_F(PredictorTest, AppliesTheCheckpointNormalisationAndTheModelsProbabilities) {
  deploy::Predictor pr(save(true));
  for (int64_t batch : {int64_t{256}, int64_t{3}}) {  // one batch, and batches split across streams
    auto out = pr.predict(raw, 8, batch);
    ASSERT_EQ(out.size(), 8u);
    double worst_norm = 0, min_raw_gap = 1e30;
    for (const auto& p : out) {
      const auto& st = *std::find_if(raw.streams.begin(), raw.streams.end(), [&](auto& s) { return s.source == p.source; });
      const auto want = reference(st, p.start, true), unnormalised = reference(st, p.start, false);
      ASSERT_EQ(p.probs.size(), size_t(cfg.C));
      double sum = 0;
      for (float v : p.probs) {
        EXPECT_TRUE(std::isfinite(v) && v >= 0 && v <= 1) << v;
        sum += v;
      }
      EXPECT_NEAR(sum, 1.0, 1e-5);
      auto d = test::compare(p.probs.data(), want.data(), want.size());
      auto u = test::compare(p.probs.data(), unnormalised.data(), unnormalised.size());
      worst_norm = std::max(worst_norm, d.max_abs);
      min_raw_gap = std::min(min_raw_gap, u.max_abs);
      EXPECT_LE(d.max_abs, 1e-5) << p.source << " @" << p.start << ": not the model's probabilities on the z-scored window";
      EXPECT_EQ(p.label, argmax(want)) << p.source << " @" << p.start;
      EXPECT_EQ(p.label, argmax(p.probs));
    }
    std::printf("batch %lld: probs vs model on z-scored windows max|diff| %.2g; vs un-normalised windows at least %.2g\n",
                (long long)batch, worst_norm, min_raw_gap);
    // The test can tell: the model's output on the raw (un-normalised) windows is far from it.
    EXPECT_GT(min_raw_gap, 1e-2);
  }
}

TEST_F(PredictorTest, WithoutStatisticsTheRawValuesGoIn) {
  deploy::Predictor pr(save(false));
  auto out = pr.predict(raw, 8);
  ASSERT_EQ(out.size(), 8u);
  for (const auto& p : out) {
    const auto& st = *std::find_if(raw.streams.begin(), raw.streams.end(), [&](auto& s) { return s.source == p.source; });
    const auto want = reference(st, p.start, false);
    EXPECT_LE(test::compare(p.probs.data(), want.data(), want.size()).max_abs, 1e-5);
  }
}

TEST_F(PredictorTest, Int8CutsTheSameWindowsWithProperProbabilities) {
  deploy::Predictor fp(save(true)), q(save(true), "int8");
  auto a = fp.predict(raw, 8), b = q.predict(raw, 8);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].start, b[i].start);
    double sum = 0;
    for (float v : b[i].probs) sum += v;
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_EQ(b[i].label, argmax(b[i].probs));
    EXPECT_LE(test::compare(b[i].probs.data(), a[i].probs.data(), a[i].probs.size()).max_abs, 0.05);
  }
}

TEST_F(PredictorTest, ClearFailures) {
  deploy::Predictor pr(save(true));
  EXPECT_THROW(pr.predict(raw, 0), std::runtime_error);
  data::RawData two = raw;
  two.axis_names = {"x", "y"};
  EXPECT_THROW(pr.predict(two, 8), std::runtime_error);
  data::RawData short_only = raw;
  short_only.streams = {raw.streams[1]};
  EXPECT_THROW(pr.predict(short_only, 8), std::runtime_error);
  nn::CheckpointMeta meta;
  meta.normalization = {{"mean", std::vector<float>{0, 0}}, {"std", std::vector<float>{1, 1}}};
  const std::string bad = (dir / "bad.safetensors").string();
  nn::save_checkpoint(bad, *model, meta);
  EXPECT_THROW(deploy::Predictor{bad}, std::runtime_error);
}
