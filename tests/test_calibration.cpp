// train/calibration.h on cases worked out by hand, and temperature scaling recovering a known
// temperature from sampled labels.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "train/calibration.h"

using namespace harvit;
using namespace harvit::train;

TEST(Calibration, TemperatureRecoversTheOverconfidence) {
  // Labels drawn from softmax(z); the model reports logits 3 z: the fitted temperature is ~3.
  Rng rng(1);
  const int64_t N = 20000, C = 4;
  std::vector<float> logits(N * C);
  std::vector<int32_t> y(N);
  for (int64_t i = 0; i < N; ++i) {
    double z[4], s = 0;
    for (int c = 0; c < C; ++c) s += std::exp(z[c] = 1.5 * rng.normal());
    double u = rng.uniform() * s, acc = 0;
    y[i] = C - 1;
    for (int c = 0; c < C; ++c) {
      acc += std::exp(z[c]);
      if (u < acc) {
        y[i] = c;
        break;
      }
    }
    for (int c = 0; c < C; ++c) logits[i * C + c] = static_cast<float>(3 * z[c]);
  }
  const double T = fit_temperature(logits.data(), y.data(), N, C);
  EXPECT_NEAR(T, 3.0, 0.15);
  EXPECT_LT(nll_t(logits.data(), y.data(), N, C, T), nll_t(logits.data(), y.data(), N, C, 1.0));
  // and calibration improves
  const auto before = calibration(softmax_t(logits.data(), N, C, 1.0).data(), y.data(), N, C);
  const auto after = calibration(softmax_t(logits.data(), N, C, T).data(), y.data(), N, C);
  EXPECT_LT(after.ece, 0.02);
  EXPECT_GT(before.ece, 0.1);
}

TEST(Calibration, EceAndMceByHand) {
  // 10 bins: (0.9 correct) in bin 9, (0.8 wrong) in bin 8: ECE = (0.1 + 0.8) / 2, MCE = 0.8
  const std::vector<float> p = {0.9f, 0.1f, 0.8f, 0.2f};
  const std::vector<int32_t> y = {0, 1};
  const auto c = calibration(p.data(), y.data(), 2, 2, 10);
  EXPECT_NEAR(c.ece, 0.45, 1e-6);
  EXPECT_NEAR(c.mce, 0.8, 1e-6);
  EXPECT_NEAR(c.accuracy, 0.5, 1e-12);
  EXPECT_EQ(c.bins[9].count, 1);
  EXPECT_EQ(c.bins[8].count, 1);
  EXPECT_NEAR(c.nll, (-std::log(0.9) - std::log(0.2)) / 2, 1e-6);
}

TEST(Calibration, RiskCoverageAndThresholdByHand) {
  const std::vector<float> conf = {0.7f, 0.9f, 0.6f, 0.8f};
  const std::vector<uint8_t> ok = {1, 1, 1, 0};  // sorted: .9 ok, .8 wrong, .7 ok, .6 ok
  const auto rc = risk_coverage(conf, ok);
  ASSERT_EQ(rc.risk.size(), 4u);
  EXPECT_DOUBLE_EQ(rc.risk[0], 0.0);
  EXPECT_DOUBLE_EQ(rc.risk[1], 0.5);
  EXPECT_NEAR(rc.risk[2], 1.0 / 3, 1e-12);
  EXPECT_DOUBLE_EQ(rc.risk[3], 0.25);
  EXPECT_NEAR(rc.aurc, (0 + 0.5 + 1.0 / 3 + 0.25) / 4, 1e-12);
  EXPECT_FLOAT_EQ(rc.threshold[1], 0.8f);
  EXPECT_FLOAT_EQ(threshold_for_coverage(conf, 0.5), 0.8f);
  EXPECT_FLOAT_EQ(threshold_for_coverage(conf, 0.75), 0.7f);
  EXPECT_FLOAT_EQ(threshold_for_coverage(conf, 1.0), 0.6f);
  EXPECT_THROW(threshold_for_coverage(conf, 0.0), std::runtime_error);
}

TEST(Calibration, AurocAndDetectionByHand) {
  EXPECT_DOUBLE_EQ(auroc({1, 2, 3}, {4, 5}), 1.0);
  EXPECT_DOUBLE_EQ(auroc({1, 2, 3}, {0}), 0.0);
  EXPECT_DOUBLE_EQ(auroc({1}, {1}), 0.5);
  EXPECT_DOUBLE_EQ(auroc({1, 3}, {2}), 0.5);
  std::vector<float> known;
  for (int i = 1; i <= 100; ++i) known.push_back(float(i));
  // 95 % of the knowns accepted: threshold 95; unknowns 96 and 200 flagged, 50 not
  EXPECT_NEAR(detection_at_coverage(known, {50, 96, 200}, 0.95), 2.0 / 3, 1e-12);
}

TEST(Calibration, FeatureScoresRankFarPointsHigher) {
  Rng rng(3);
  const int64_t D = 4, C = 2, N = 400;
  std::vector<float> f(N * D);
  std::vector<int32_t> y(N);
  for (int64_t i = 0; i < N; ++i) {
    y[i] = i % 2;
    for (int64_t d = 0; d < D; ++d) f[i * D + d] = (y[i] ? 3.0f : -3.0f) * (d == 0) + 0.5f * rng.normal();
  }
  FeatureScorer s(f, y, D, C, 5);
  // in cluster 0, in cluster 1, far along another axis (same norm direction trick for knn)
  const std::vector<float> q = {-3, 0, 0, 0, 3, 0, 0, 0, 0, 6, 6, 0};
  const auto m = s.mahalanobis(q), k = s.knn(q);
  EXPECT_LT(m[0], 1.0f);
  EXPECT_LT(m[1], 1.0f);
  EXPECT_GT(m[2], 5.0f);
  EXPECT_GT(k[2], 3 * std::max(k[0], k[1]));
  EXPECT_THROW(FeatureScorer(f, y, D, C, 0), std::runtime_error);
}
