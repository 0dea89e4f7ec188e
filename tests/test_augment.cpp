// data/augment.h: each augmentation on its own (shift is a circular roll within range, rotation
// touches whole xyz triples only and keeps their norms), the per-batch stream, and the trainer's
// TrainOptions overload drawing exactly the same numbers. Statistical checks of scaling and jitter
// are in test_trainer.cpp (Augment.*).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <set>
#include <vector>

#include "core/rng.h"
#include "data/augment.h"
#include "train/trainer.h"

using namespace harvit;

namespace {
std::vector<float> noise(int64_t n, uint64_t seed) {
  std::vector<float> x(n);
  Rng r(seed);
  for (auto& v : x) v = r.normal();
  return x;
}
}  // namespace

TEST(Augment, AnyIsOffByDefault) {
  EXPECT_FALSE(data::AugmentOptions{}.any());
  EXPECT_TRUE((data::AugmentOptions{0, 0, 0, 1}).any());
  EXPECT_TRUE((data::AugmentOptions{0, 0.1, 0, 0}).any());
}

TEST(Augment, ShiftIsACircularRollWithinRange) {
  const int64_t B = 200, T = 12, M = 2, S = 3;
  const auto x = noise(B * T * M, 1);
  auto y = x;
  Rng rng(4);
  data::augment_windows(y.data(), B, T, M, {0, 0, 0, S}, rng);
  std::set<int64_t> seen;
  for (int64_t b = 0; b < B; ++b) {
    int64_t found = -100;
    for (int64_t k = -S; k <= S && found == -100; ++k) {
      bool ok = true;
      for (int64_t t = 0; t < T && ok; ++t)
        for (int64_t m = 0; m < M; ++m) ok &= y[(b * T + (t + k + T) % T) * M + m] == x[(b * T + t) * M + m];
      if (ok) found = k;
    }
    ASSERT_NE(found, -100) << "window " << b << " is not a roll by at most " << S;
    seen.insert(found);
  }
  EXPECT_EQ(seen.size(), size_t(2 * S + 1));  // 200 draws reach every shift in [-3, 3]
}

// A shift wider than the window (the augmented recipe's 32 on 8-sample windows) is a roll by k
// mod T: it used to index before the buffer for k < -T (heap corruption under the sanitizers).
TEST(Augment, ShiftWiderThanTheWindowWraps) {
  const int64_t B = 300, T = 8, M = 3, S = 32;
  const auto x = noise(B * T * M, 2);
  auto y = x;
  Rng rng(5);
  data::augment_windows(y.data(), B, T, M, {0, 0, 0, S}, rng);
  for (int64_t b = 0; b < B; ++b) {
    bool rolled = false;
    for (int64_t k = 0; k < T && !rolled; ++k) {
      bool ok = true;
      for (int64_t t = 0; t < T && ok; ++t)
        for (int64_t m = 0; m < M; ++m) ok &= y[(b * T + (t + k) % T) * M + m] == x[(b * T + t) * M + m];
      rolled = ok;
    }
    ASSERT_TRUE(rolled) << "window " << b << " is not a circular roll of itself";
  }
}

TEST(Augment, RotationTouchesWholeTriplesAndKeepsTheirNorms) {
  const int64_t B = 3, T = 8, M = 4;  // one triple and one axis left over
  const auto x = noise(B * T * M, 2);
  auto y = x;
  Rng rng(5);
  data::augment_windows(y.data(), B, T, M, {0, 0, 90, 0}, rng);
  for (int64_t r = 0; r < B * T; ++r) {
    const float* a = &x[r * M];
    const float* b = &y[r * M];
    EXPECT_NEAR(a[0] * a[0] + a[1] * a[1] + a[2] * a[2], b[0] * b[0] + b[1] * b[1] + b[2] * b[2], 1e-4);
    EXPECT_EQ(a[3], b[3]);  // not part of a triple: untouched
  }
  EXPECT_NE(x, y);
  // One rotation per (window, triple): the dot products between time steps are kept too.
  for (int64_t b = 0; b < B; ++b) {
    const float *p = &x[b * T * M], *q = &x[(b * T + 5) * M], *P = &y[b * T * M], *Q = &y[(b * T + 5) * M];
    EXPECT_NEAR(p[0] * q[0] + p[1] * q[1] + p[2] * q[2], P[0] * Q[0] + P[1] * Q[1] + P[2] * Q[2], 1e-4);
  }
}

// rotate_together: one rotation turns every triple of a window (a phone's accelerometer and
// gyroscope turn together), so dot products between triples are kept; one rotation per triple
// (the default) changes them.
TEST(Augment, RotationTogetherTurnsEveryTripleAlike) {
  const int64_t B = 4, T = 6, M = 9;
  const auto x = noise(B * T * M, 3);
  auto dot = [M](const std::vector<float>& v, int64_t r, int64_t s, int64_t g, int64_t h) {
    double d = 0;
    for (int i = 0; i < 3; ++i) d += double(v[r * M + g + i]) * v[s * M + h + i];
    return d;
  };
  for (bool together : {true, false}) {
    auto y = x;
    Rng rng(6);
    data::AugmentOptions o{0, 0, 60, 0};
    o.rotate_together = together;
    data::augment_windows(y.data(), B, T, M, o, rng);
    double worst = 0;  // largest change of a dot product between two triples, over windows and times
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (auto [g, h] : {std::pair<int64_t, int64_t>{0, 3}, {0, 6}, {3, 6}}) {
          const int64_t r = b * T + t, s = b * T + (t + 2) % T;
          worst = std::max(worst, std::fabs(dot(x, r, s, g, h) - dot(y, r, s, g, h)));
          EXPECT_NEAR(dot(x, r, r, g, g), dot(y, r, r, g, g), 1e-4);  // norms kept either way
        }
    if (together)
      EXPECT_LT(worst, 1e-4);
    else
      EXPECT_GT(worst, 0.1);
    EXPECT_NE(x, y);
  }
}

// The draws of one window, in order (augment.h): the shift, then per triple (once with
// rotate_together) 3 normals and a uniform, then per axis a uniform, then per value a normal. A
// change of this order changes every augmented training run, so it is pinned: the stream after
// augmenting equals a replay of exactly these draws.
TEST(Augment, DrawOrderIsPinned) {
  const int64_t T = 5, M = 9, B = 2;
  for (bool together : {false, true}) {
    auto x = noise(B * T * M, 4);
    data::AugmentOptions o{0.1, 0.2, 15, 3};
    o.rotate_together = together;
    Rng a(11), b(11);
    data::augment_windows(x.data(), B, T, M, o, a);
    for (int64_t w = 0; w < B; ++w) {
      b.below(2 * 3 + 1);
      for (int64_t g = 0; g < (together ? 1 : M / 3); ++g) {
        b.normal(), b.normal(), b.normal();
        b.uniform();
      }
      for (int64_t m = 0; m < M; ++m) b.uniform();
      for (int64_t i = 0; i < T * M; ++i) b.normal();
    }
    EXPECT_EQ(a.next_u64(), b.next_u64()) << (together ? "together" : "per triple");
  }
}

TEST(Augment, StreamPerSeedEpochStep) {
  auto draw = [](uint64_t seed, int64_t e, int64_t s) { return data::augment_rng(seed, e, s).next_u64(); };
  EXPECT_EQ(draw(7, 2, 3), draw(7, 2, 3));
  EXPECT_NE(draw(7, 2, 3), draw(7, 2, 4));
  EXPECT_NE(draw(7, 2, 3), draw(7, 3, 3));
  EXPECT_NE(draw(7, 2, 3), draw(8, 2, 3));
}

TEST(Augment, TrainOptionsOverloadDrawsTheSameNumbers) {
  const int64_t B = 4, T = 16, M = 6;
  const auto x = noise(B * T * M, 3);
  train::TrainOptions o;
  o.aug_scale = 0.2, o.aug_jitter = 0.1, o.aug_rotate = 15, o.aug_shift = 4;
  EXPECT_EQ(o.augment().scale, 0.2);
  EXPECT_EQ(o.augment().shift, 4);
  auto a = x, b = x;
  Rng r1(9), r2(9);
  train::augment_windows(a.data(), B, T, M, o, r1);
  data::augment_windows(b.data(), B, T, M, o.augment(), r2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, x);
  EXPECT_EQ(r1.next_u64(), r2.next_u64());
}
