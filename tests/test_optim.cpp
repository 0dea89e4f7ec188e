#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "optim/adamw.h"

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
