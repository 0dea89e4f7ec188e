// Whole-model parity with PyTorch: logits, loss, every parameter gradient and a 10-step
// AdamW + StepLR loss trajectory, against fixtures written by tools/torch_reference.py.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "fixture_util.h"
#include "optim/adamw.h"
#include "optim/schedule.h"

using namespace harvit;

namespace {

// Tolerances, relative to the largest reference magnitude of each tensor:
//   logits/loss 1e-4 (the bound; fp32 summation order differs from PyTorch's),
//   gradients 1e-4 (backward chains ~20 fp32 GEMMs and reductions in a different order),
//   trajectory 2e-3 per step (AdamW normalises tiny gradient differences into lr-sized steps).
// The key biases' gradients are zero in exact arithmetic (softmax ignores a shift shared by all
// keys of a query), so both sides hold rounding noise (~1e-9): they are checked to be that small.
constexpr double kLogitTol = 1e-4, kGradTol = 1e-4, kTrajTol = 2e-3, kZeroGrad = 1e-6;

void check_fixture(const std::string& file) {
  const std::string path = test::source_path("tests/fixtures/" + file);
  SafetensorsFile f = SafetensorsFile::load(path);
  const auto& md = f.metadata();
  ASSERT_TRUE(md.count("format") && md.at("format") == "harvit-fixture" && md.at("version") == "1")
      << path << ": not a version-1 harvit fixture; regenerate with "
      << "python3 tools/torch_reference.py fixtures";
  const auto cfg = nn::VitConfig::from_json(nlohmann::json::parse(md.at("config")));
  const uint64_t seed = std::stoull(md.at("seed"));
  const int64_t B = std::stoll(md.at("batch"));

  nn::Vit model(cfg);
  test::fixture_params(model, seed);
  std::vector<float> x = f.floats("x");
  std::vector<int32_t> y = f.ints("y");
  ASSERT_EQ(int64_t(y.size()), B);
  // Our generator must reproduce the fixture's inputs exactly (same hash as the Python side).
  std::vector<float> xg;
  std::vector<int32_t> yg;
  test::fixture_batch(cfg, seed, 1000, B, xg, yg);
  ASSERT_EQ(xg, x);
  ASSERT_EQ(yg, y);

  const float* logits = model.forward(x.data(), B);
  auto want_logits = f.floats("logits");
  auto dl = test::compare(logits, want_logits.data(), want_logits.size());
  std::printf("[%s] logits max|diff| %.3g (rel %.3g)\n", file.c_str(), dl.max_abs, dl.rel());
  EXPECT_LE(dl.rel(), kLogitTol);
  const float loss = model.loss(y.data());
  const float want_loss = f.floats("loss")[0];
  std::printf("[%s] loss %.7f vs torch %.7f\n", file.c_str(), loss, want_loss);
  EXPECT_LE(std::fabs(loss - want_loss) / std::fabs(want_loss), kLogitTol);

  model.params().zero_grad();
  model.backward(y.data());
  double worst = 0;
  std::string worst_name;
  for (const auto& p : model.params().infos()) {
    const float* g = model.params().grads() + p.offset;
    test::Diff d;
    if (f.has("grad." + p.name)) {
      auto want = f.floats("grad." + p.name);
      ASSERT_EQ(int64_t(want.size()), p.size) << p.name;
      d = test::compare(g, want.data(), want.size());
    } else {
      ASSERT_TRUE(f.has("grad_idx." + p.name)) << "fixture lacks the gradient of " << p.name;
      auto idx = f.ints("grad_idx." + p.name);
      auto want = f.floats("grad_sample." + p.name);
      std::vector<float> got(idx.size());
      for (size_t i = 0; i < idx.size(); ++i) got[i] = g[idx[i]];
      d = test::compare(got.data(), want.data(), want.size());
    }
    if (p.name.ends_with("key.bias")) {
      EXPECT_LE(d.max_ref + d.max_abs, kZeroGrad) << p.name << " should be ~0";
      continue;
    }
    EXPECT_LE(d.rel(), kGradTol) << "gradient of " << p.name << " max|diff| " << d.max_abs
                                 << " max|ref| " << d.max_ref;
    if (d.rel() > worst) worst = d.rel(), worst_name = p.name;
  }
  std::printf("[%s] %zu parameter gradients, worst rel diff %.3g (%s)\n", file.c_str(),
              model.params().infos().size(), worst, worst_name.c_str());

  // Training trajectory.
  test::fixture_params(model, seed);
  optim::AdamWConfig oc;
  oc.lr = std::stod(md.at("lr"));
  oc.weight_decay = std::stod(md.at("weight_decay"));
  optim::AdamW opt(model.params().count(), oc);
  optim::StepLR sched{oc.lr, std::stoll(md.at("step_size")), std::stod(md.at("gamma"))};
  auto want_traj = f.floats("train_losses");
  const int64_t steps = std::stoll(md.at("steps"));
  ASSERT_EQ(int64_t(want_traj.size()), steps);
  double worst_traj = 0;
  for (int64_t s = 0; s < steps; ++s) {
    std::vector<float> xb;
    std::vector<int32_t> yb;
    test::fixture_batch(cfg, seed, 2000 + 2 * s, B, xb, yb);
    model.params().zero_grad();
    model.forward(xb.data(), B);
    const float l = model.loss(yb.data());
    model.backward(yb.data());
    opt.step(model.params().values(), model.params().grads(), sched.lr(s));
    const double rel = std::fabs(l - want_traj[s]) / std::fabs(want_traj[s]);
    if (!(rel <= worst_traj)) worst_traj = rel;  // a NaN stays the worst (std::max would drop it)
    if (std::getenv("HARVIT_VERBOSE")) std::printf("  step %lld loss %.7f torch %.7f rel %.2g\n", (long long)s, l, want_traj[s], rel);
    EXPECT_LE(rel, kTrajTol) << "step " << s << ": loss " << l << " vs torch " << want_traj[s];
  }
  auto want_final = f.floats("final_logits");
  auto df = test::compare(model.forward(x.data(), B), want_final.data(), want_final.size());
  std::printf("[%s] %lld AdamW+StepLR steps: worst loss rel diff %.3g; final logits rel diff %.3g\n",
              file.c_str(), (long long)steps, worst_traj, df.rel());
  EXPECT_LE(df.rel(), 10 * kTrajTol);
}

}  // namespace

TEST(VitParity, SeedConfig) { check_fixture("vit_seed.safetensors"); }
TEST(VitParity, OddConfigPaddedMerge) { check_fixture("vit_odd.safetensors"); }
