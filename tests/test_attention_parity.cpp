// The ViT's attention probabilities (Vit::attention, what `harvit explain` draws) against PyTorch's
// for every block, on the parity fixtures' parameters and batch: tests/fixtures/vit_*_attention
// written by `python3 tools/torch_reference.py attention`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "fixture_util.h"

using namespace harvit;

namespace {

// The parity test's tolerance for the forward (tests/test_vit_parity.cpp): 1e-4 relative to the
// largest reference magnitude of each tensor.
constexpr double kTol = 1e-4;

void check_attention(const std::string& file) {
  const std::string path = test::source_path("tests/fixtures/" + file);
  SafetensorsFile f = SafetensorsFile::load(path);
  const auto& md = f.metadata();
  ASSERT_TRUE(md.count("format") && md.at("format") == "harvit-fixture" && md.count("kind") &&
              md.at("kind") == "attention")
      << path << ": not an attention fixture; regenerate with python3 tools/torch_reference.py attention";
  const auto cfg = nn::VitConfig::from_json(nlohmann::json::parse(md.at("config")));
  const uint64_t seed = std::stoull(md.at("seed"));
  const int64_t B = std::stoll(md.at("batch"));
  nn::Vit model(cfg);
  test::fixture_params(model, seed);
  std::vector<float> x;
  std::vector<int32_t> y;
  test::fixture_batch(cfg, seed, 1000, B, x, y);  // the parity test's batch
  ASSERT_EQ(x, f.floats("x"));
  const float* logits = model.forward(x.data(), B);
  const auto want_logits = f.floats("logits");
  EXPECT_LE(test::compare(logits, want_logits.data(), want_logits.size()).rel(), kTol);
  for (int64_t l = 0; l < cfg.L; ++l) {
    const std::string name = "att." + std::to_string(l);
    ASSERT_TRUE(f.has(name)) << path << " lacks " << name;
    const auto want = f.floats(name);
    const int64_t n = cfg.tokens(l);
    // torch keeps (B, M, H, n, n); harvit (G = B*M, H, n, n): the same memory order
    ASSERT_EQ(int64_t(want.size()), B * cfg.M * cfg.H * n * n) << name;
    const float* got = model.attention(l);
    const auto d = test::compare(got, want.data(), want.size());
    // and how far the probabilities are from uniform, so the tolerance means something
    double spread = 0;
    for (float v : want) spread = std::max(spread, std::fabs(double(v) - 1.0 / n));
    std::printf("[%s] block %lld (%lld tokens): max|diff| %.3g, max|p - 1/n| %.3g\n", file.c_str(), (long long)l,
                (long long)n, d.max_abs, spread);
    EXPECT_LE(d.rel(), kTol) << name << " max|diff| " << d.max_abs << " max|ref| " << d.max_ref;
    EXPECT_LT(d.max_abs, 0.01 * spread) << name << ": the difference is not small against the maps' structure";
  }
  EXPECT_THROW(model.attention(cfg.L), std::exception);
  EXPECT_THROW(model.attention(-1), std::exception);
}

}  // namespace

TEST(AttentionParity, SeedConfig) { check_attention("vit_seed_attention.safetensors"); }
TEST(AttentionParity, OddConfigPaddedMerge) { check_attention("vit_odd_attention.safetensors"); }

TEST(AttentionParity, NeedsAForward) {
  nn::VitConfig c;
  c.D = 16, c.H = 2, c.A = 8, c.hidden = 16;
  nn::Vit model(c);
  EXPECT_THROW(model.attention(0), std::exception);
}
