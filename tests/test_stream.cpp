// The streaming recogniser (deploy/stream.h): when it classifies (the first full window, then
// every hop), that blocks and single samples give the same decisions, that its probabilities are
// the batch path's (Predictor) for the same windows, the smoothing and hysteresis rules on
// hand-made probability sequences, timestamp gaps, the decision queue, the callback, reset and
// option errors. No allocation and no thread pool: test_stream_alloc.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "deploy/classifier.h"
#include "deploy/predictor.h"
#include "nn/checkpoint.h"
#include "deploy/stream.h"
#include "stream_fixture.h"

using namespace harvit;
using deploy::Decision;
using deploy::StreamOptions;
using deploy::StreamRecognizer;

namespace {

struct StreamTest : ::testing::TestWithParam<std::string> {  // "vit" | "cnn"
  static void SetUpTestSuite() {
    dir = test::temp_dir("stream");
    vit = test::write_stream_checkpoint(dir, "vit");
    cnn = test::write_stream_checkpoint(dir, "cnn");
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir); }
  static inline std::filesystem::path dir;
  static inline std::string vit, cnn;
  std::string ckpt() const { return GetParam() == "vit" ? vit : cnn; }
};

std::vector<Decision> drain(StreamRecognizer& s, std::vector<std::vector<float>>* probs = nullptr) {
  std::vector<Decision> out;
  Decision d;
  while (s.next(d)) {
    if (probs) probs->emplace_back(d.probs, d.probs + s.classes());
    out.push_back(d);
  }
  return out;
}

TEST_P(StreamTest, ClassifiesTheFirstFullWindowThenEveryHop) {
  StreamOptions o;
  o.hop = 8;
  StreamRecognizer s(ckpt(), o);
  EXPECT_EQ(s.window(), 32);
  EXPECT_EQ(s.hop(), 8);
  const auto x = test::stream_samples(100, 1);
  for (int64_t i = 0; i < 100; ++i) s.push(x.data() + i * 3, 1);
  const auto ds = drain(s);
  ASSERT_EQ(ds.size(), 9u);  // ends 32, 40, ..., 96
  for (size_t k = 0; k < ds.size(); ++k) {
    EXPECT_EQ(ds[k].end, 32 + 8 * static_cast<int64_t>(k));
    EXPECT_EQ(ds[k].time_ns, -1);
    EXPECT_GE(ds[k].label, 0);
    EXPECT_LT(ds[k].label, 4);
  }
  EXPECT_TRUE(ds[0].changed);
  EXPECT_EQ(s.samples(), 100);
  EXPECT_EQ(s.decisions(), 9);
  // default hop: half a window
  StreamRecognizer half(ckpt());
  EXPECT_EQ(half.hop(), 16);
  EXPECT_EQ(half.push(x.data(), 100), 5);  // ends 32, 48, 64, 80, 96
}

TEST_P(StreamTest, BlocksGiveTheDecisionsOfSingleSamples) {
  StreamOptions o;
  o.hop = 5;
  o.smooth = 3;
  o.hysteresis = 2;
  StreamRecognizer one(ckpt(), o), blocks(ckpt(), o);
  const int64_t n = 300;
  const auto x = test::stream_samples(n, 2);
  for (int64_t i = 0; i < n; ++i) one.push(x.data() + i * 3, 1);
  Rng rng(5);
  for (int64_t i = 0; i < n;) {
    const int64_t k = std::min<int64_t>(n - i, 1 + rng.below(70));
    blocks.push(x.data() + i * 3, k);
    i += k;
  }
  std::vector<std::vector<float>> p1, p2;
  const auto a = drain(one, &p1), b = drain(blocks, &p2);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), static_cast<size_t>((n - 32) / 5 + 1));
  for (size_t k = 0; k < a.size(); ++k) {
    EXPECT_EQ(a[k].end, b[k].end);
    EXPECT_EQ(a[k].label, b[k].label);
    EXPECT_EQ(a[k].hop_label, b[k].hop_label);
    EXPECT_EQ(a[k].changed, b[k].changed);
    EXPECT_EQ(p1[k], p2[k]);  // bit for bit: the same window, the same code
  }
}

// Streaming and batch labelling share Classifier: the stream's unsmoothed probabilities at each
// hop are Predictor's for the window ending there (batch 256 through oneDNN vs batch 1 on the
// calling thread's kernels: equal to float rounding).
TEST_P(StreamTest, HopProbabilitiesAreThoseOfPredict) {
  for (const char* precision : {"fp32", "int8"}) {
    SCOPED_TRACE(precision);
    const int64_t n = 200, hop = 12;
    data::RawData raw;
    raw.name = "test";
    raw.axis_names = {"x", "y", "z"};
    raw.class_names = {"Walking"};
    data::RawStream st;
    st.source = "s";
    st.values = test::stream_samples(n, 3);
    st.label.assign(n, -1);
    raw.streams.push_back(st);
    deploy::Predictor pred(ckpt(), precision);
    const auto want = pred.predict(raw, hop);
    StreamOptions o;
    o.hop = hop;
    o.precision = precision;
    StreamRecognizer s(ckpt(), o);
    s.push(st.values.data(), n);
    std::vector<std::vector<float>> probs;
    const auto got = drain(s, &probs);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].end, want[k].start + 32);
      EXPECT_EQ(got[k].hop_label, want[k].label);
      for (int c = 0; c < 4; ++c) worst = std::max(worst, std::fabs(double(probs[k][c]) - want[k].probs[c]));
    }
    EXPECT_LT(worst, 2e-5);
  }
}

TEST_P(StreamTest, TimestampGapRestartsTheWindow) {
  StreamOptions o;
  o.hop = 8;
  o.max_gap_ns = 100'000'000;  // 0.1 s at 20 ms per sample
  StreamRecognizer s(ckpt(), o);
  const auto x = test::stream_samples(120, 4);
  std::vector<int64_t> t(120);
  for (int64_t i = 0; i < 120; ++i) t[i] = 20'000'000LL * i + (i >= 50 ? 1'000'000'000LL : 0);  // 1 s gap before 50
  s.push(x.data(), 120, t.data());
  const auto ds = drain(s);
  // before the gap: ends 32, 40, 48; after it the window refills from sample 50: ends 82, 90, ..., 114
  std::vector<int64_t> ends;
  for (auto& d : ds) ends.push_back(d.end);
  EXPECT_EQ(ends, (std::vector<int64_t>{32, 40, 48, 82, 90, 98, 106, 114}));
  EXPECT_EQ(s.gaps(), 1);
  EXPECT_EQ(ds[3].time_ns, t[81]);
  EXPECT_TRUE(ds[3].changed);  // the label is taken afresh after a restart
  // a step back in time restarts too
  StreamRecognizer back(ckpt(), o);
  std::vector<int64_t> tb(40);
  for (int64_t i = 0; i < 40; ++i) tb[i] = 20'000'000LL * (i < 20 ? i : i - 10);
  back.push(x.data(), 40, tb.data());
  EXPECT_EQ(back.gaps(), 1);
  EXPECT_EQ(back.decisions(), 0);  // 20 samples since the restart: no full window yet
}

TEST_P(StreamTest, FullQueueDropsTheOldest) {
  StreamOptions o;
  o.hop = 8;
  o.queue = 2;
  StreamRecognizer s(ckpt(), o);
  const auto x = test::stream_samples(100, 5);
  EXPECT_EQ(s.push(x.data(), 100), 9);
  EXPECT_EQ(s.dropped(), 7);
  const auto ds = drain(s);
  ASSERT_EQ(ds.size(), 2u);
  EXPECT_EQ(ds[0].end, 88);
  EXPECT_EQ(ds[1].end, 96);
}

TEST_P(StreamTest, CallbackGetsEveryDecisionAndResetStartsOver) {
  StreamOptions o;
  o.hop = 8;
  o.queue = 1;
  StreamRecognizer s(ckpt(), o);
  struct Seen { std::vector<int64_t> ends; float psum = 0; } seen;
  s.set_callback([](const Decision& d, void* u) {
    auto* v = static_cast<Seen*>(u);
    v->ends.push_back(d.end);
    v->psum = 0;
    for (int c = 0; c < 4; ++c) v->psum += d.probs[c];
  }, &seen);
  const auto x = test::stream_samples(100, 6);
  s.push(x.data(), 100);
  EXPECT_EQ(seen.ends.size(), 9u);
  EXPECT_NEAR(seen.psum, 1.0f, 1e-5f);
  EXPECT_EQ(s.dropped(), 0);
  Decision d;
  EXPECT_FALSE(s.next(d));
  s.reset();
  s.set_callback(nullptr, nullptr);
  s.push(x.data(), 31);
  EXPECT_FALSE(s.next(d));  // 31 samples since the reset
  s.push(x.data(), 1);
  ASSERT_TRUE(s.next(d));
  EXPECT_EQ(d.end, 132);  // the sample count goes on
  EXPECT_TRUE(d.changed);
}

// A checkpoint with calibration metadata (harvit calibrate): the temperature divides the logits,
// the threshold makes the stream (and predict) say "unknown" unless reject overrides it.
TEST_P(StreamTest, CalibrationFromTheCheckpoint) {
  auto ck = nn::load_checkpoint(ckpt());
  ck.meta.extra = {{"calibration", {{"temperature", 2.0}, {"threshold", 0.999}}}};
  const auto path = (dir / (GetParam() + "_calibrated.safetensors")).string();
  nn::save_checkpoint(path, *ck.model, ck.meta);
  deploy::Classifier plain(ckpt()), cal(path);
  EXPECT_TRUE(cal.calibrated());
  EXPECT_FALSE(plain.calibrated());
  EXPECT_DOUBLE_EQ(cal.temperature(), 2.0);
  const auto x = test::stream_samples(32, 7);
  const std::vector<float> p1(plain.classify(x.data(), 1), plain.classify(x.data(), 1) + 4);
  const float* p2 = cal.classify(x.data(), 1);
  // softmax(z / 2) from softmax(z): p2_c = p1_c^(1/2) / sum_k p1_k^(1/2)
  double s = 0;
  for (float v : p1) s += std::sqrt(v);
  for (int c = 0; c < 4; ++c) EXPECT_NEAR(p2[c], std::sqrt(p1[c]) / s, 1e-5);
  EXPECT_TRUE(cal.unknown(p2));
  StreamOptions o;
  o.hop = 8;
  StreamRecognizer s1(path, o);
  EXPECT_FLOAT_EQ(s1.reject(), 0.999f);
  const auto xs = test::stream_samples(100, 8);
  s1.push(xs.data(), 100);
  for (const auto& d : drain(s1)) EXPECT_EQ(d.label, -1);
  o.reject = 0;  // off
  StreamRecognizer s2(path, o);
  s2.push(xs.data(), 100);
  for (const auto& d : drain(s2)) EXPECT_GE(d.label, 0);
  // nonsense calibration: an error naming the file
  ck.meta.extra = {{"calibration", {{"temperature", -1.0}, {"threshold", 0.5}}}};
  nn::save_checkpoint(path, *ck.model, ck.meta);
  try {
    deploy::Classifier bad(path);
    ADD_FAILURE() << "no error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("calibrated.safetensors: calibration: the temperature must be positive"),
              std::string::npos) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Models, StreamTest, ::testing::Values("vit", "cnn"));

TEST(Stream, OptionErrorsNameTheProblem) {
  const auto dir = test::temp_dir("stream_opts");
  const auto ck = test::write_stream_checkpoint(dir, "vit");
  auto err = [&](StreamOptions o) {
    try {
      StreamRecognizer s(ck, o);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  StreamOptions o;
  o.precision = "bf16";
  EXPECT_NE(err(o).find("streaming runs fp32 or int8"), std::string::npos) << err(o);
  o = {};
  o.hop = -1;
  EXPECT_NE(err(o).find("hop"), std::string::npos);
  o = {};
  o.smooth = 3;
  o.votes = 4;
  EXPECT_NE(err(o).find("votes must be between 1 and smooth (3)"), std::string::npos) << err(o);
  o = {};
  o.min_confidence = 1.5f;
  EXPECT_NE(err(o).find("min_confidence"), std::string::npos);
  o = {};
  o.reject = 1.5f;
  EXPECT_NE(err(o).find("reject must be in [0, 1]"), std::string::npos) << err(o);
  o = {};
  o.hysteresis = 0;
  EXPECT_NE(err(o).find("hysteresis"), std::string::npos);
  o = {};
  EXPECT_NE(err(o).find("no error"), std::string::npos);
  try {
    StreamRecognizer s((dir / "missing.safetensors").string());
    ADD_FAILURE() << "no error for a missing checkpoint";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("missing.safetensors"), std::string::npos) << e.what();
  }
  EXPECT_THROW(deploy::parse_smoothing("median"), std::runtime_error);
  std::filesystem::remove_all(dir);
}

// ---- smoothing and hysteresis on hand-made probabilities ------------------------------------

std::vector<float> onehot(int c, float p, int C = 3) {
  std::vector<float> v(C, (1.0f - p) / (C - 1));
  v[c] = p;
  return v;
}

std::vector<int32_t> run(deploy::Smoother& s, const std::vector<std::vector<float>>& seq) {
  std::vector<int32_t> out;
  for (const auto& p : seq) out.push_back(s.update(p.data()));
  return out;
}

TEST(Smoother, NoSmoothingFollowsEveryHop) {
  StreamOptions o;
  deploy::Smoother s(3, o);
  EXPECT_EQ(run(s, {onehot(0, .9f), onehot(1, .6f), onehot(2, .5f), onehot(0, .9f)}),
            (std::vector<int32_t>{0, 1, 2, 0}));
}

TEST(Smoother, MeanOverKHopsIgnoresOneOutlier) {
  StreamOptions o;
  o.smooth = 3;
  deploy::Smoother s(3, o);
  // mean of (0:.9) (0:.9) (1:.9): class 0 .633, class 1 .333 -> stays 0; then 0, 1: the last
  // three hops (1, 0, 1) give class 1 .617 -> 1
  EXPECT_EQ(run(s, {onehot(0, .9f), onehot(0, .9f), onehot(1, .9f), onehot(0, .9f), onehot(1, .9f), onehot(1, .9f)}),
            (std::vector<int32_t>{0, 0, 0, 0, 1, 1}));
  EXPECT_NEAR(s.smoothed()[1], (0.05f + 0.9f + 0.9f) / 3, 1e-6f);
}

TEST(Smoother, HysteresisNeedsConsecutiveWins) {
  StreamOptions o;
  o.hysteresis = 2;
  deploy::Smoother s(3, o);
  // 1 wins once (no switch), 0 again, then 1 twice in a row (switch on the second), 2 once
  EXPECT_EQ(run(s, {onehot(0, .9f), onehot(1, .9f), onehot(0, .9f), onehot(1, .9f), onehot(1, .9f), onehot(2, .9f)}),
            (std::vector<int32_t>{0, 0, 0, 0, 1, 1}));
  // a different challenger interrupts the count: 1, 2, 1 never switches
  deploy::Smoother t(3, o);
  EXPECT_EQ(run(t, {onehot(0, .9f), onehot(1, .9f), onehot(2, .9f), onehot(1, .9f)}),
            (std::vector<int32_t>{0, 0, 0, 0}));
}

TEST(Smoother, MinConfidenceHoldsTheLabel) {
  StreamOptions o;
  o.min_confidence = 0.7f;
  deploy::Smoother s(3, o);
  // no label until a hop is confident; an unconfident winner does not replace it
  EXPECT_EQ(run(s, {onehot(1, .5f), onehot(1, .8f), onehot(2, .6f), onehot(2, .75f)}),
            (std::vector<int32_t>{-1, 1, 1, 2}));
}

TEST(Smoother, RejectionIsAStateUnderHysteresis) {
  StreamOptions o;
  o.hysteresis = 2;
  deploy::Smoother s(3, o, /*reject=*/0.6f);
  // unsure at first (unknown, -1); a confident class is taken at once; one unsure hop does not
  // make it unknown, two do; a confident class needs two hops to come back
  EXPECT_EQ(run(s, {onehot(0, .5f), onehot(0, .9f), onehot(1, .5f), onehot(0, .9f), onehot(1, .5f), onehot(2, .4f),
                    onehot(2, .9f), onehot(2, .9f)}),
            (std::vector<int32_t>{-1, 0, 0, 0, 0, -1, -1, 2}));
}

TEST(Smoother, VoteKOfN) {
  StreamOptions o;
  o.method = deploy::Smoothing::Vote;
  o.smooth = 4;
  o.votes = 3;
  o.min_confidence = 0.6f;
  deploy::Smoother s(3, o);
  // hops (label:conf): 0:.9 -> 0 (a majority of 1); 1:.9 -> 0 (1 vs 1, 2 needed of 2); 1:.9 -> 1?
  // history 0,1,1 (not full: majority of 3 = 2) -> 1; 0:.9 -> history 0,1,1,0 full, 3 needed: none -> stays 1;
  // 0:.5 (no vote) -> 1,1,0,- : none -> 1; 0:.9, 0:.9 -> 0,-,0,0 = 3 votes for 0 -> 0
  EXPECT_EQ(run(s, {onehot(0, .9f), onehot(1, .9f), onehot(1, .9f), onehot(0, .9f), onehot(0, .5f), onehot(0, .9f),
                    onehot(0, .9f)}),
            (std::vector<int32_t>{0, 0, 1, 1, 1, 1, 0}));
}

}  // namespace
