// The comparison helpers the other tests rely on (fixture_util.h): a NaN or inf result must be
// reported as a failure, never as a perfect match.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "fixture_util.h"

using harvit::test::compare;
using harvit::test::ErrTally;

namespace {
const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();
}

TEST(TestUtil, CompareMeasuresFiniteDifferences) {
  const std::vector<float> want = {1.0f, -4.0f, 2.0f}, got = {1.5f, -4.0f, 1.75f};
  auto d = compare(got.data(), want.data(), want.size());
  EXPECT_EQ(d.nonfinite, 0u);
  EXPECT_DOUBLE_EQ(d.max_abs, 0.5);
  EXPECT_DOUBLE_EQ(d.max_ref, 4.0);
  EXPECT_DOUBLE_EQ(d.rel(), 0.125);
  EXPECT_DOUBLE_EQ(compare(want.data(), want.data(), want.size()).rel(), 0.0);
}

TEST(TestUtil, CompareFailsOnNaNAndInf) {
  const std::vector<float> want = {1.0f, -4.0f, 2.0f, 0.5f};
  // All NaN (a plain std::max fold reports max_abs 0: "identical"), one NaN, +inf, -inf, and a
  // non-finite expected value.
  std::vector<std::vector<float>> bad = {{kNaN, kNaN, kNaN, kNaN}, {1.0f, kNaN, 2.0f, 0.5f}, {1.0f, -4.0f, kInf, 0.5f},
                                         {-kInf, -4.0f, 2.0f, 0.5f}};
  for (const auto& got : bad) {
    auto d = compare(got.data(), want.data(), want.size());
    EXPECT_GT(d.nonfinite, 0u);
    EXPECT_FALSE(d.rel() <= 1e30) << "rel " << d.rel();
    EXPECT_FALSE(d.max_abs <= 1e30) << "max_abs " << d.max_abs;
  }
  auto all_nan = compare(bad[0].data(), want.data(), want.size());
  EXPECT_EQ(all_nan.nonfinite, want.size());
  std::vector<float> want_nan = want;
  want_nan[2] = kNaN;
  EXPECT_FALSE(compare(want.data(), want_nan.data(), want.size()).rel() <= 1e30);
}

TEST(TestUtil, ErrTallyCountsNaNAndInfAsBad) {
  ErrTally t;
  EXPECT_TRUE(t.add(1e-4, 1e-3));
  EXPECT_FALSE(t.add(std::nan(""), 1e-3));
  EXPECT_TRUE(t.add(5e-4, 1e-3));
  EXPECT_FALSE(t.add(std::numeric_limits<double>::infinity(), 1e-3));
  EXPECT_FALSE(t.add(2e-3, 1e-3));
  EXPECT_EQ(t.n, 5);
  EXPECT_EQ(t.bad, 3);
  EXPECT_FALSE(t.worst <= 1e30) << "worst " << t.worst;  // the NaN is not dropped by the max
  ErrTally only_nan;
  only_nan.add(std::nan(""), 1.0);
  EXPECT_EQ(only_nan.bad, 1);
  EXPECT_FALSE(only_nan.worst <= 1e30);
}
