#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "optim/adamw.h"
#include "optim/schedule.h"

using namespace harvit::optim;

TEST(AdamW, MatchesTorchFormulaInDouble) {
  // torch.optim.AdamW, written out in double for three steps on a few values.
  AdamWConfig c;
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  std::vector<float> p = {0.5f, -1.0f, 2.0f, 0.0f};
  std::vector<double> pd(p.begin(), p.end()), m(4, 0), v(4, 0);
  AdamW opt(4, c);
  const std::vector<std::vector<float>> grads = {{0.1f, -0.2f, 0.0f, 1e-9f}, {0.3f, 0.1f, -0.5f, 0.f}, {-0.1f, 0.2f, 0.4f, 2.f}};
  for (int t = 1; t <= 3; ++t) {
    const auto& g = grads[t - 1];
    opt.step(p.data(), g.data(), c.lr);
    for (int i = 0; i < 4; ++i) {
      pd[i] *= 1 - c.lr * c.weight_decay;
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * double(g[i]) * g[i];
      const double bc1 = 1 - std::pow(c.beta1, t), bc2 = 1 - std::pow(c.beta2, t);
      pd[i] -= c.lr / bc1 * m[i] / (std::sqrt(v[i]) / std::sqrt(bc2) + c.eps);
    }
  }
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(p[i], pd[i], 1e-6) << i;
  EXPECT_EQ(opt.steps(), 3);
}

TEST(StepLR, HalvesEveryStepSize) {
  StepLR s{5e-4, 16, 0.5};
  EXPECT_DOUBLE_EQ(s.lr(0), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr(15), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr(16), 2.5e-4);
  EXPECT_DOUBLE_EQ(s.lr(49), 5e-4 / 8);
}

// Cosine with warm-up, worked by hand: base 1e-3, 10 steps of which 4 warm up.
TEST(Schedule, CosineWarmsUpLinearlyThenFollowsHalfACosine) {
  CosineLR c{1e-3, 10, 4};
  EXPECT_DOUBLE_EQ(c.lr(0), 0.25e-3);  // (s + 1) / warm-up
  EXPECT_DOUBLE_EQ(c.lr(1), 0.5e-3);
  EXPECT_DOUBLE_EQ(c.lr(3), 1e-3);     // the last warm-up step reaches the base rate
  EXPECT_DOUBLE_EQ(c.lr(4), 1e-3);     // cos(0): the decay starts at the base rate
  EXPECT_NEAR(c.lr(7), 0.5e-3, 1e-18); // half-way through the 6 decay steps: cos(pi / 2)
  EXPECT_NEAR(c.lr(5), 0.5e-3 * (1 + std::cos(M_PI / 6)), 1e-18);
  EXPECT_NEAR(c.lr(10), 0.0, 1e-18);   // the end: cos(pi)
  // Without warm-up it starts at the base rate; a fractional warm-up is allowed.
  EXPECT_DOUBLE_EQ((CosineLR{2e-3, 8, 0}).lr(0), 2e-3);
  EXPECT_DOUBLE_EQ((CosineLR{1e-3, 8, 2.5}).lr(1), 1e-3 * 2 / 2.5);
  // The last step of a fractional warm-up (s = 2 < 2.5) would go above the base rate, (2 + 1) / 2.5:
  // it stays at the base rate; so does a warm-up shorter than one step.
  EXPECT_DOUBLE_EQ((CosineLR{1e-3, 8, 2.5}).lr(2), 1e-3);
  EXPECT_DOUBLE_EQ((CosineLR{1e-3, 8, 0.43}).lr(0), 1e-3);
  EXPECT_DOUBLE_EQ((CosineLR{1e-3, 8, 2.5}).lr(3), 0.5e-3 * (1 + std::cos(M_PI * 0.5 / 5.5)));
}

TEST(Schedule, NegativeWarmUpIsAnError) {
  for (double w : {-1.0, std::nan("")}) {
    try {
      LrSchedule("cosine", 1e-3, 9, 7, 3, 0.5, w);
      ADD_FAILURE() << w << " accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("--warmup-epochs must be 0 or more"), std::string::npos) << e.what();
    }
  }
  // Longer than the run (--recipe augmented --epochs 1): the rate rises to the end.
  const LrSchedule longer("cosine", 1e-3, 1, 10, 3, 0.5, 2);
  EXPECT_DOUBLE_EQ(longer.lr(0, 9), 1e-3 * 10 / 20);
}

TEST(Schedule, LrScheduleStepIsPerEpochCosinePerStep) {
  // StepLR ignores the step inside the epoch.
  LrSchedule st("step", 5e-4, 9, 7, 3, 0.5, 0);
  EXPECT_FALSE(st.per_step());
  EXPECT_DOUBLE_EQ(st.lr(0, 0), 5e-4);
  EXPECT_DOUBLE_EQ(st.lr(2, 6), 5e-4);
  EXPECT_DOUBLE_EQ(st.lr(3, 0), 2.5e-4);
  EXPECT_DOUBLE_EQ(st.lr(8, 3), 1.25e-4);
  // Cosine counts steps over epochs: epoch e, step k is global step e * steps_per_epoch + k.
  LrSchedule co("cosine", 1e-3, 5, 4, 1, 0.5, 1.5);  // 20 steps, warm-up 6
  EXPECT_TRUE(co.per_step());
  const CosineLR ref{1e-3, 20, 6};
  for (int64_t e = 0; e < 5; ++e)
    for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(co.lr(e, k), ref.lr(e * 4 + k)) << e << " " << k;
  EXPECT_DOUBLE_EQ(co.lr(0, 0), 1e-3 / 6);
  EXPECT_DOUBLE_EQ(co.lr(1, 1), 1e-3);
  EXPECT_THROW(LrSchedule("linear", 1e-3, 5, 4, 1, 0.5, 0), std::runtime_error);
  EXPECT_THROW(LrSchedule("step", 1e-3, 5, 4, 0, 0.5, 0), std::runtime_error);
}
