// Metrics against a hand-computed case (sklearn semantics, zero_division = 0), including a
// class that is never predicted.
#include <gtest/gtest.h>

#include "train/metrics.h"

using namespace harvit::train;

TEST(Metrics, HandComputedWithANeverPredictedClass) {
  const std::vector<int32_t> truth = {0, 0, 1, 1, 2, 2, 2}, pred = {0, 1, 1, 1, 1, 0, 1};
  Metrics m = compute_metrics(truth, pred, 3);
  EXPECT_EQ(m.confusion, (std::vector<int64_t>{1, 1, 0, 0, 2, 0, 1, 2, 0}));
  EXPECT_DOUBLE_EQ(m.accuracy, 3.0 / 7);
  EXPECT_DOUBLE_EQ(m.per_class[0].precision, 0.5);
  EXPECT_DOUBLE_EQ(m.per_class[0].recall, 0.5);
  EXPECT_DOUBLE_EQ(m.per_class[1].precision, 0.4);
  EXPECT_DOUBLE_EQ(m.per_class[1].recall, 1.0);
  EXPECT_NEAR(m.per_class[1].f1, 0.8 / 1.4, 1e-12);
  EXPECT_EQ(m.per_class[2].precision, 0.0);  // never predicted: 0, not NaN
  EXPECT_EQ(m.per_class[2].recall, 0.0);
  EXPECT_EQ(m.per_class[2].f1, 0.0);
  EXPECT_EQ(m.per_class[2].support, 3);
  EXPECT_NEAR(m.precision_weighted, 1.8 / 7, 1e-12);
  EXPECT_NEAR(m.recall_weighted, 3.0 / 7, 1e-12);
  EXPECT_NEAR(m.f1_weighted, (1.0 + 2 * 0.8 / 1.4) / 7, 1e-12);
  EXPECT_NEAR(m.precision_macro, 0.3, 1e-12);
  EXPECT_NEAR(m.recall_macro, 0.5, 1e-12);
  EXPECT_NEAR(m.f1_macro, (0.5 + 0.8 / 1.4) / 3, 1e-12);
  EXPECT_DOUBLE_EQ(m.class_accuracy(1), 1.0);
  auto j = m.to_json({"a", "b", "c"});
  EXPECT_EQ(j["per_class"][2]["class"], "c");
  EXPECT_EQ(j["confusion"][2][1], 2);
}

TEST(Metrics, PerfectAndErrors) {
  Metrics m = compute_metrics({0, 1, 2}, {0, 1, 2}, 3);
  EXPECT_EQ(m.accuracy, 1.0);
  EXPECT_EQ(m.f1_macro, 1.0);
  EXPECT_EQ(m.f1_weighted, 1.0);
  EXPECT_THROW(compute_metrics({0, 1}, {0}, 2), std::runtime_error);
  EXPECT_THROW(compute_metrics({0, 3}, {0, 1}, 2), std::runtime_error);
}
