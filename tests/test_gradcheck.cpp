// Finite-difference checks of every layer's backward pass (central differences; the checker
// accumulates the scalar objective in double precision). Each op: inputs drawn at random, the
// objective L = sum(out * r) for a random r, analytic gradients from backward(dout = r), numeric
// ones from (L(x+h) - L(x-h)) / 2h on a sample of entries of every input.
//
// Tolerances (|numeric - analytic| <= tol * max(1, |analytic|)), and why:
//   the forward passes run in fp32, so L carries a rounding error of about 1e-7 * sum|out * r|;
//   divided by 2h that is up to ~1e-5 for h = 1e-2 on these sizes, and the O(h^2) truncation
//   error is of the same order for smooth ops (measured worst: 4e-5 linear, 7e-5 LayerNorm,
//   3e-5 attention; 4e-4 for the fused LayerNorm with h = 1e-3). tol = 1e-3 for linear, patch
//   embedding, patch merge and softmax cross-entropy (linear in the checked input, or nearly);
//   3e-3 for LayerNorm and attention (curvature of rsqrt and exp). ReLU kinks are kept further than h from every input that is
//   perturbed (see layernorm_residual_relu), so the check never straddles one.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <limits>
#include <tuple>
#include <vector>

#include "core/rng.h"
#include "fixture_util.h"
#include "nn/cnn.h"
#include "nn/layers.h"

using namespace harvit;
using namespace harvit::nn;

namespace {

using Vec = std::vector<float>;

struct Input {
  const char* name;
  Vec* value;
  Vec* grad;  // filled by backward
};

Vec randn(Rng& rng, size_t n, float scale = 1.0f) {
  Vec v(n);
  for (auto& x : v) x = scale * rng.normal();
  return v;
}

double objective(const Vec& out, const Vec& r) {
  double s = 0;
  for (size_t i = 0; i < out.size(); ++i) s += double(out[i]) * double(r[i]);
  return s;
}

// |numeric - analytic| / max(1, |analytic|); NaN when either is NaN (ErrTally counts it bad).
double grad_err(double numeric, double analytic) {
  if (!std::isfinite(numeric) || !std::isfinite(analytic)) return std::numeric_limits<double>::quiet_NaN();
  return std::fabs(numeric - analytic) / std::max(1.0, std::fabs(analytic));
}

// forward(out) computes the op's output from the current input values; backward(dout) must
// accumulate into the zeroed gradient buffers of `inputs`.
void gradcheck(const char* op, std::vector<Input> inputs, const std::function<void(Vec&)>& forward,
               const std::function<void(const Vec&)>& backward, float h, double tol,
               uint64_t seed = 1) {
  Rng rng(seed);
  Vec out;
  forward(out);
  const Vec r = randn(rng, out.size());
  for (auto& in : inputs) in.grad->assign(in.value->size(), 0.0f);
  backward(r);
  for (auto& in : inputs) {
    Vec& x = *in.value;
    const size_t n = x.size();
    const size_t samples = std::min<size_t>(n, 48);
    test::ErrTally tally;  // a NaN or inf error is bad (and the worst)
    for (size_t s = 0; s < samples; ++s) {
      const size_t i = samples == n ? s : static_cast<size_t>(rng.below(n));
      const float orig = x[i];
      x[i] = orig + h;
      forward(out);
      const double lp = objective(out, r);
      x[i] = orig - h;
      forward(out);
      const double lm = objective(out, r);
      x[i] = orig;
      const double numeric = (lp - lm) / (2.0 * h);
      const double analytic = (*in.grad)[i];
      EXPECT_TRUE(tally.add(grad_err(numeric, analytic), tol))
          << op << ": d/d" << in.name << "[" << i << "] numeric " << numeric << " analytic " << analytic;
    }
    std::printf("  %-28s d/d%-8s worst err %.2e (tol %.0e, %zu of %zu entries)\n", op, in.name,
                tally.worst, tol, samples, n);
  }
}

}  // namespace

TEST(GradCheck, Linear) {
  Rng rng(11);
  const int64_t R = 7, IN = 13, OUT = 9;
  Vec x = randn(rng, R * IN), w = randn(rng, OUT * IN, 0.3f), b = randn(rng, OUT), gx, gw, gb;
  gradcheck("linear", {{"x", &x, &gx}, {"w", &w, &gw}, {"b", &b, &gb}},
            [&](Vec& out) { out.assign(R * OUT, 0); linear_forward(out.data(), x.data(), w.data(), b.data(), R, IN, OUT); },
            [&](const Vec& d) { linear_backward(gx.data(), gw.data(), gb.data(), d.data(), x.data(), w.data(), R, IN, OUT); },
            1e-2f, 1e-3);
}

TEST(GradCheck, LayerNorm) {
  Rng rng(12);
  const int64_t R = 5, Dn = 24;
  Vec x = randn(rng, R * Dn, 2.0f), g = randn(rng, Dn), b = randn(rng, Dn), mean(R), rstd(R), gx, gg, gb;
  gradcheck("layernorm", {{"x", &x, &gx}, {"gain", &g, &gg}, {"bias", &b, &gb}},
            [&](Vec& out) { out.assign(R * Dn, 0); layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), g.data(), b.data(), R, Dn); },
            [&](const Vec& d) { layernorm_backward(gx.data(), gg.data(), gb.data(), d.data(), x.data(), mean.data(), rstd.data(), g.data(), R, Dn); },
            1e-2f, 3e-3);
}

TEST(GradCheck, LayerNormResidualRelu) {
  // out = relu(res + LN(x)): the fused form used after attention. The residual is shifted so
  // that no pre-activation lies within 0.3 of the kink; a perturbation of h moves LN(x) by far less.
  Rng rng(13);
  const int64_t R = 6, Dn = 16;
  Vec x = randn(rng, R * Dn), g = randn(rng, Dn, 0.5f), b = randn(rng, Dn, 0.5f), res = randn(rng, R * Dn);
  Vec mean(R), rstd(R), pre(R * Dn);
  layernorm_forward(pre.data(), mean.data(), rstd.data(), x.data(), g.data(), b.data(), R, Dn, res.data(), false);
  for (size_t i = 0; i < pre.size(); ++i)
    if (std::fabs(pre[i]) < 0.3f) res[i] += pre[i] >= 0 ? 0.3f : -0.3f;
  Vec gx, gg, gb, gres;
  Vec tmp;
  gradcheck("layernorm+residual+relu", {{"x", &x, &gx}, {"gain", &g, &gg}, {"bias", &b, &gb}, {"res", &res, &gres}},
            [&](Vec& out) { out.assign(R * Dn, 0); layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), g.data(), b.data(), R, Dn, res.data(), true); },
            [&](const Vec& d) {
              Vec out(R * Dn);
              layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), g.data(), b.data(), R, Dn, res.data(), true);
              tmp.assign(R * Dn, 0);
              relu_backward(tmp.data(), d.data(), out.data(), R * Dn);
              for (size_t i = 0; i < tmp.size(); ++i) gres[i] += tmp[i];  // residual path
              layernorm_backward(gx.data(), gg.data(), gb.data(), tmp.data(), x.data(), mean.data(), rstd.data(), g.data(), R, Dn);
            },
            1e-3f, 3e-3);
}

TEST(GradCheck, Attention) {
  Rng rng(14);
  const int64_t G = 3, n = 5, H = 2, A = 4, HA = H * A;
  Vec q = randn(rng, G * n * HA), k = randn(rng, G * n * HA), v = randn(rng, G * n * HA);
  Vec att(G * H * n * n), gq, gk, gv;
  gradcheck("attention", {{"q", &q, &gq}, {"k", &k, &gk}, {"v", &v, &gv}},
            [&](Vec& out) { out.assign(G * n * HA, 0); attention_forward(out.data(), att.data(), q.data(), k.data(), v.data(), G, n, H, A, HA); },
            [&](const Vec& d) { attention_backward(gq.data(), gk.data(), gv.data(), d.data(), att.data(), q.data(), k.data(), v.data(), G, n, H, A, HA); },
            1e-2f, 3e-3);
}

// The fused q|k|v layout: q, k, v are column blocks of one (G*n, 3*H*A) buffer (row stride ld).
TEST(GradCheck, AttentionFusedQkvViews) {
  Rng rng(24);
  const int64_t G = 2, n = 6, H = 3, A = 4, HA = H * A, ld = 3 * HA;
  Vec qkv = randn(rng, G * n * ld), att(G * H * n * n), gqkv;
  gradcheck("attention (fused qkv)", {{"qkv", &qkv, &gqkv}},
            [&](Vec& out) {
              out.assign(G * n * HA, 0);
              attention_forward(out.data(), att.data(), qkv.data(), qkv.data() + HA, qkv.data() + 2 * HA, G, n, H, A, ld);
            },
            [&](const Vec& d) {
              attention_backward(gqkv.data(), gqkv.data() + HA, gqkv.data() + 2 * HA, d.data(), att.data(),
                                 qkv.data(), qkv.data() + HA, qkv.data() + 2 * HA, G, n, H, A, ld);
            },
            1e-2f, 3e-3);
}

// accumulate = false must equal accumulating into zeros, whatever the buffer held before.
// The forward against double-precision loops at sizes the small gradient checks do not reach:
// full 8-lane softmax chunks with and without a tail, the seed's head width, several row tiles.
TEST(Attention, ForwardMatchesDoubleReference) {
  Rng rng(41);
  for (auto [n, H, A] : {std::tuple<int64_t, int64_t, int64_t>{8, 2, 4}, {32, 4, 64}, {17, 3, 20}, {1, 1, 3}}) {
    const int64_t G = 3, HA = H * A, ld = 3 * HA;
    Vec qkv = randn(rng, G * n * ld), z(G * n * HA), att(G * H * n * n);
    for (auto& v : qkv) v *= 2.0f;  // peaked softmaxes too
    attention_forward(z.data(), att.data(), qkv.data(), qkv.data() + HA, qkv.data() + 2 * HA, G, n, H, A, ld);
    for (int64_t g = 0; g < G; ++g)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < n; ++i) {
          std::vector<double> s(n);
          double mx = -1e300, sum = 0;
          for (int64_t j = 0; j < n; ++j) {
            double d = 0;
            for (int64_t a = 0; a < A; ++a)
              d += double(qkv[(g * n + i) * ld + h * A + a]) * qkv[(g * n + j) * ld + HA + h * A + a];
            s[j] = d / std::sqrt(double(A));
            mx = std::max(mx, s[j]);
          }
          for (auto& v : s) sum += (v = std::exp(v - mx));
          for (int64_t j = 0; j < n; ++j)
            ASSERT_NEAR(att[((g * H + h) * n + i) * n + j], s[j] / sum, 2e-6) << n << " " << A;
          for (int64_t a = 0; a < A; ++a) {
            double zz = 0;
            for (int64_t j = 0; j < n; ++j) zz += s[j] / sum * qkv[(g * n + j) * ld + 2 * HA + h * A + a];
            ASSERT_NEAR(z[(g * n + i) * HA + h * A + a], zz, 1e-5 * (1 + std::fabs(zz))) << n << " " << A;
          }
        }
  }
}

TEST(GradCheck, OverwriteModeIgnoresOldContents) {
  Rng rng(25);
  const int64_t R = 6, IN = 5, OUT = 7, G = 2, n = 5;
  Vec x = randn(rng, R * IN), w = randn(rng, OUT * IN), dout = randn(rng, R * OUT);
  auto check = [&](const char* what, size_t size, const std::function<void(float*, bool)>& run) {
    Vec acc(size, 0.0f), over = randn(rng, size, 100.0f);
    run(acc.data(), true);
    run(over.data(), false);
    for (size_t i = 0; i < size; ++i) ASSERT_EQ(acc[i], over[i]) << what << " element " << i;
  };
  check("linear dinp", R * IN, [&](float* d, bool a) {
    linear_backward(d, nullptr, nullptr, dout.data(), x.data(), w.data(), R, IN, OUT, a);
  });
  Vec out(R * IN), mean(R), rstd(R), g = randn(rng, IN), b = randn(rng, IN), dy = randn(rng, R * IN);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), g.data(), b.data(), R, IN, nullptr, true);
  check("relu", R * IN, [&](float* d, bool a) { relu_backward(d, dy.data(), out.data(), R * IN, a); });
  check("layernorm dinp", R * IN, [&](float* d, bool a) {
    layernorm_backward(d, nullptr, nullptr, dy.data(), x.data(), mean.data(), rstd.data(), g.data(), R, IN, a);
  });
  Vec dcat = randn(rng, G * 3 * 2 * IN);
  check("patch merge", G * n * IN, [&](float* d, bool a) { patch_merge_backward(d, dcat.data(), G, n, IN, a); });
}

TEST(GradCheck, PatchMergeOddAndEven) {
  for (int64_t n : {7, 8, 1}) {
    Rng rng(15 + n);
    const int64_t G = 3, Dn = 5, n2 = (n + 1) / 2;
    Vec x = randn(rng, G * n * Dn), gx;
    gradcheck(n % 2 ? "patch_merge (odd n)" : "patch_merge (even n)", {{"x", &x, &gx}},
              [&](Vec& out) { out.assign(G * n2 * 2 * Dn, -1); patch_merge_forward(out.data(), x.data(), G, n, Dn); },
              [&](const Vec& d) { patch_merge_backward(gx.data(), d.data(), G, n, Dn); }, 1e-2f, 1e-3);
  }
  // The padded token is exactly zero.
  Vec x(2 * 3 * 4, 1.0f), out(2 * 2 * 2 * 4, -1.0f);
  patch_merge_forward(out.data(), x.data(), 2, 3, 4);
  for (int64_t g = 0; g < 2; ++g)
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(out[(g * 2 + 1) * 8 + 4 + i], 0.0f);
  // For even n the merge reads its input in place (the ViT passes y itself): its bytes already
  // are the (G, n/2, 2*Dn) layout patch_merge_forward would write.
  Vec even(2 * 4 * 4), copied(even.size(), -1.0f);
  for (size_t i = 0; i < even.size(); ++i) even[i] = float(i);
  patch_merge_forward(copied.data(), even.data(), 2, 4, 4);
  EXPECT_EQ(copied, even);
  // Any split of the output rows into ranges (a team's threads) writes what one call writes.
  for (int64_t n : {7, 8, 1}) {
    const int64_t G = 3, Dn = 5, n2 = (n + 1) / 2, rows = G * n2;
    Vec in(G * n * Dn), whole(rows * 2 * Dn, -1.0f);
    for (size_t i = 0; i < in.size(); ++i) in[i] = float(i) + 0.5f;
    patch_merge_forward(whole.data(), in.data(), G, n, Dn);
    for (int64_t cut = 0; cut <= rows; ++cut) {
      Vec parts(whole.size(), -1.0f);
      patch_merge_forward_rows(parts.data(), in.data(), n, Dn, 0, cut);
      patch_merge_forward_rows(parts.data(), in.data(), n, Dn, cut, rows);
      ASSERT_EQ(parts, whole) << "n " << n << ", rows split at " << cut;
    }
  }
}

TEST(GradCheck, PatchEmbed) {
  Rng rng(16);
  const int64_t B = 2, T = 14, M = 3, P = 4, D = 6, N = T / P;  // T % P != 0: the tail is dropped
  Vec x = randn(rng, B * T * M), w = randn(rng, D * P), b = randn(rng, D), pos = randn(rng, M * N * D);
  Vec patches(B * M * N * P), gw, gb, gpos;
  gradcheck("patch_embed", {{"w", &w, &gw}, {"b", &b, &gb}, {"pos", &pos, &gpos}},
            [&](Vec& out) { out.assign(B * M * N * D, 0); patch_embed_forward(out.data(), patches.data(), x.data(), w.data(), b.data(), pos.data(), B, T, M, P, D); },
            [&](const Vec& d) { patch_embed_backward(gw.data(), gb.data(), gpos.data(), d.data(), patches.data(), B, M, N, P, D); },
            1e-2f, 1e-3);
}

// One window takes the small-kernel path, a batch of 16 the library GEMM: both against loops.
TEST(PatchEmbed, ForwardMatchesReferenceForOneWindowAndABatch) {
  Rng rng(17);
  const int64_t T = 128, M = 3, P = 4, D = 256, N = T / P;
  const Vec w = randn(rng, D * P), b = randn(rng, D), pos = randn(rng, M * N * D);
  for (int64_t B : {1, 16}) {
    const Vec x = randn(rng, B * T * M);
    Vec out(B * M * N * D), patches(B * M * N * P);
    patch_embed_forward(out.data(), patches.data(), x.data(), w.data(), b.data(), pos.data(), B, T, M, P, D);
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n)
          for (int64_t d = 0; d < D; ++d) {
            double ref = b[d] + pos[(m * N + n) * D + d];
            for (int64_t p = 0; p < P; ++p) ref += double(w[d * P + p]) * x[(bb * T + n * P + p) * M + m];
            ASSERT_NEAR(out[((bb * M + m) * N + n) * D + d], ref, 1e-5) << "B=" << B;
          }
  }
}

TEST(GradCheck, SoftmaxCrossEntropy) {
  Rng rng(17);
  const int64_t B = 4, C = 5;
  Vec logits = randn(rng, B * C, 2.0f), probs(B * C), gl;
  std::vector<int32_t> y = {0, 3, 4, 3};
  // The objective is the loss itself: out = [loss], r = [1] is drawn at random but scales both sides.
  gradcheck("softmax_cross_entropy", {{"logits", &logits, &gl}},
            [&](Vec& out) { out.assign(1, softmax_cross_entropy_forward(probs.data(), logits.data(), y.data(), B, C)); },
            [&](const Vec& d) {
              Vec tmp(B * C, 0);
              softmax_cross_entropy_backward(tmp.data(), probs.data(), y.data(), B, C);
              for (int64_t i = 0; i < B * C; ++i) gl[i] += d[0] * tmp[i];
            },
            1e-2f, 1e-3);
}

TEST(GradCheck, Conv1d) {
  Rng rng(18);
  const int64_t B = 2, T = 7, Cin = 3, Cout = 4, K = 5;  // K/2 = 2 padded steps on each side
  Vec x = randn(rng, B * T * Cin), w = randn(rng, Cout * Cin * K, 0.3f), b = randn(rng, Cout);
  Vec cols(B * T * Cin * K), dcols(B * T * Cin * K), gx, gw, gb;
  gradcheck("conv1d", {{"x", &x, &gx}, {"w", &w, &gw}, {"b", &b, &gb}},
            [&](Vec& out) { out.assign(B * T * Cout, 0); conv1d_forward(out.data(), cols.data(), x.data(), w.data(), b.data(), B, T, Cin, Cout, K); },
            [&](const Vec& d) { conv1d_backward(gx.data(), gw.data(), gb.data(), dcols.data(), d.data(), cols.data(), w.data(), B, T, Cin, Cout, K); },
            1e-2f, 1e-3);
}

TEST(GradCheck, MaxPoolAndAveragePool) {
  // Pairs differ by at least 0.5, far more than h, so the argmax never flips during the check.
  Rng rng(19);
  const int64_t B = 2, T = 9, Cc = 3, T2 = T / 2;  // odd T: the last step is dropped
  Vec x(B * T * Cc), gx;
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 7) * 0.5f + 0.1f * rng.uniform();
  std::vector<uint8_t> arg(B * T2 * Cc);
  gradcheck("maxpool2", {{"x", &x, &gx}},
            [&](Vec& out) { out.assign(B * T2 * Cc, 0); maxpool2_forward(out.data(), arg.data(), x.data(), B, T, Cc); },
            [&](const Vec& d) { maxpool2_backward(gx.data(), d.data(), arg.data(), B, T, Cc); }, 1e-2f, 1e-3);
  Vec y = randn(rng, B * T * Cc), gy;
  gradcheck("avgpool_time", {{"x", &y, &gy}},
            [&](Vec& out) { out.assign(B * Cc, 0); avgpool_time_forward(out.data(), y.data(), B, T, Cc); },
            [&](const Vec& d) { avgpool_time_backward(gy.data(), d.data(), B, T, Cc); }, 1e-2f, 1e-3);
}

namespace {

// Central differences of a model's loss for a sample of every parameter tensor (up to 12 entries
// each), against `analytic` (the slab of gradients).
test::ErrTally model_gradcheck(Model& m, const Vec& x, const std::vector<int32_t>& y, int64_t B, const Vec& analytic,
                               Rng& rng, float h, double tol) {
  test::ErrTally tally;
  for (const auto& p : m.params().infos()) {
    for (int s = 0; s < std::min<int64_t>(p.size, 12); ++s) {
      const int64_t i = p.offset + static_cast<int64_t>(rng.below(p.size));
      float* v = m.params().values() + i;
      const float orig = *v;
      *v = orig + h;
      m.forward(x.data(), B);
      const double lp = m.loss(y.data());
      *v = orig - h;
      m.forward(x.data(), B);
      const double lm = m.loss(y.data());
      *v = orig;
      tally.add(grad_err((lp - lm) / (2.0 * h), analytic[i]), tol);
    }
  }
  return tally;
}

struct SmallCnn {
  CnnConfig c;
  std::unique_ptr<Cnn> m;
  Vec x;
  std::vector<int32_t> y = {0, 2, 1};
  static constexpr int64_t B = 3;
  Rng rng{20};
  SmallCnn() {
    c.T = 12; c.M = 2; c.C = 3; c.channels = {4, 5}; c.kernel = 3;
    m = std::make_unique<Cnn>(c);
    m->params().init_default(rng);
    x = randn(rng, B * c.T * c.M);
  }
  Vec analytic() {
    m->params().zero_grad();
    m->forward(x.data(), B);
    m->loss(y.data());
    m->backward(y.data());
    return Vec(m->params().grads(), m->params().grads() + m->params().count());
  }
};

}  // namespace

TEST(GradCheck, CnnWholeModelParameters) {
  // The CNN end to end (conv, ReLU, max-pool, mean, linear, cross-entropy) against finite
  // differences of its loss, for a sample of every parameter tensor. ReLU and max-pool kinks
  // can fall within h of an input; the check uses h = 1e-3 and the loss, which moves little.
  SmallCnn s;
  const Vec analytic = s.analytic();
  auto t = model_gradcheck(*s.m, s.x, s.y, s.B, analytic, s.rng, 1e-3f, 2e-3);
  std::printf("  cnn (whole model)            %lld parameter entries, worst err %.2e (tol 2e-3)\n", (long long)t.n, t.worst);
  EXPECT_GT(t.n, 0);
  EXPECT_EQ(t.bad, 0);
}

// The checkers themselves: a NaN or inf gradient is an error, never a pass (`bad += err > tol`
// and std::max(worst, err) both let a NaN through).
TEST(GradCheck, NonFiniteGradientsFailTheCheck) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (auto [num, ana] : {std::pair{nan, 1.0}, {1.0, nan}, {inf, 1.0}, {1.0, inf}, {nan, nan}}) {
    test::ErrTally t;
    EXPECT_FALSE(t.add(grad_err(num, ana), 1e-3)) << num << " vs " << ana;
    EXPECT_EQ(t.bad, 1);
  }
  // The whole-model check counts every entry of an all-NaN gradient as bad.
  SmallCnn s;
  Vec analytic = s.analytic();
  std::fill(analytic.begin(), analytic.end(), static_cast<float>(nan));
  auto t = model_gradcheck(*s.m, s.x, s.y, s.B, analytic, s.rng, 1e-3f, 2e-3);
  EXPECT_GT(t.n, 0);
  EXPECT_EQ(t.bad, t.n);
  // The per-layer checker fails on a backward that writes NaN.
  Rng rng(3);
  const int64_t R = 3, IN = 4, OUT = 2;
  Vec x = randn(rng, R * IN), w = randn(rng, OUT * IN), b = randn(rng, OUT), gx, gw, gb;
  ::testing::TestPartResultArray failures;
  {
    ::testing::ScopedFakeTestPartResultReporter intercept(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    gradcheck("linear (NaN backward)", {{"x", &x, &gx}},
              [&](Vec& out) { out.assign(R * OUT, 0); linear_forward(out.data(), x.data(), w.data(), b.data(), R, IN, OUT); },
              [&](const Vec&) { std::fill(gx.begin(), gx.end(), static_cast<float>(nan)); }, 1e-2f, 1e-3);
  }
  EXPECT_EQ(failures.size(), static_cast<int>(R * IN));  // every checked entry
  for (int k = 0; k < failures.size(); ++k) EXPECT_TRUE(failures.GetTestPartResult(k).nonfatally_failed());
}

TEST(GradCheck, CrossEntropyWithLabelSmoothingAndClassWeights) {
  Rng rng(21);
  const int64_t B = 5, C = 4;
  Vec logits = randn(rng, B * C, 2.0f), probs(B * C), gl;
  std::vector<int32_t> y = {0, 3, 1, 3, 2};
  const float w[4] = {0.5f, 2.0f, 1.0f, 1.5f};
  LossOptions o{0.1f, w};
  gradcheck("cross_entropy (smoothing+weights)", {{"logits", &logits, &gl}},
            [&](Vec& out) { out.assign(1, softmax_cross_entropy_forward(probs.data(), logits.data(), y.data(), B, C, o)); },
            [&](const Vec& d) {
              Vec tmp(B * C, 0);
              softmax_cross_entropy_backward(tmp.data(), probs.data(), y.data(), B, C, o);
              for (int64_t i = 0; i < B * C; ++i) gl[i] += d[0] * tmp[i];
            },
            1e-2f, 1e-3);
  // Against the formula of torch.nn.CrossEntropyLoss(weight=w, label_smoothing=0.1), in double.
  double num = 0, W = 0;
  for (int64_t b = 0; b < B; ++b) {
    double mx = -1e30, s = 0;
    for (int64_t c = 0; c < C; ++c) mx = std::max(mx, double(logits[b * C + c]));
    for (int64_t c = 0; c < C; ++c) s += std::exp(logits[b * C + c] - mx);
    auto nll = [&](int64_t c) { return -(logits[b * C + c] - mx - std::log(s)); };
    num += 0.9 * w[y[b]] * nll(y[b]);
    for (int64_t c = 0; c < C; ++c) num += 0.1 / C * w[c] * nll(c);
    W += w[y[b]];
  }
  EXPECT_NEAR(softmax_cross_entropy_forward(probs.data(), logits.data(), y.data(), B, C, o), num / W, 1e-5);
}

TEST(GradCheck, CrossEntropyRejectsBadLabel) {
  Vec logits(6, 0.0f), probs(6);
  std::vector<int32_t> y = {0, 3};
  EXPECT_THROW(softmax_cross_entropy_forward(probs.data(), logits.data(), y.data(), 2, 3), std::runtime_error);
}
