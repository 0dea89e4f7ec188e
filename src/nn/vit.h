// The seed's sensor Vision Transformer (docs: ../shared/docs/model-spec.md), forward + backward.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/stages.h"
#include "nn/linear.h"
#include "nn/model.h"

namespace harvit::nn {

struct VitConfig {
  int64_t T = 128;      // window length (time steps)
  int64_t M = 3;        // sensor axes
  int64_t C = 6;        // classes
  int64_t P = 4;        // patch length
  int64_t D = 256;      // embedding width
  int64_t H = 4;        // heads
  int64_t A = 64;       // width of one head
  int64_t L = 3;        // transformer blocks, each halving the patches
  int64_t hidden = 1024;  // width of the dense tower

  int64_t N() const { return T / P; }
  // Tokens per axis entering block l (tokens(0) = N, tokens(L) = tokens into the head).
  int64_t tokens(int64_t l) const;
  int64_t F() const { return M * tokens(L) * D; }
  void validate() const;  // throws with a clear message on nonsense values
  nlohmann::json to_json() const;
  static VitConfig from_json(const nlohmann::json& j);
  bool operator==(const VitConfig&) const = default;
};

std::vector<LayerSummary> vit_summary(const VitConfig& cfg);

class Vit : public Model {
 public:
  explicit Vit(const VitConfig& cfg);

  const VitConfig& config() const { return cfg_; }
  std::string kind() const override { return "vit"; }
  nlohmann::json config_json() const override;
  std::vector<LayerSummary> summary() const override { return vit_summary(cfg_); }
  int64_t T() const override { return cfg_.T; }
  int64_t M() const override { return cfg_.M; }
  int64_t C() const override { return cfg_.C; }

  const float* forward(const float* x, int64_t B) override;
  void backward_from_logits(const float* dlogits) override;
  const float* features() const override { return r_.data(); }  // dense tower after LN + ReLU
  int64_t feature_dim() const override { return cfg_.hidden; }
  // int8: the q|k|v, attention-output, patch-merge and first dense layers run as int8 GEMMs
  // (patch embedding, attention scores, LayerNorm and the last, tiny layer stay fp32); their
  // weights are quantised from the slab as it is now. fp32 restores every layer.
  // bf16: every linear layer but the last runs bf16 GEMMs (training and inference).
  void set_precision(Precision p) override;
  void params_changed() override;
  void prepare_inference() override;
  Precision precision() const override { return precision_; }
  // The softmax attention probabilities of block l (0 <= l < L) from the last forward:
  // (G = B*M groups in (window, axis) order, H heads, n queries, n keys), n = config().tokens(l);
  // each query's row over the keys sums to 1. Valid until the next forward (harvit explain).
  const float* attention(int64_t l) const;

 private:
  struct Block {  // layers and offsets into the slab
    Linear qkv, o, merge;  // qkv (3*HA, D) = [query; key; value]: one fused projection
    int64_t g1, b1, g2, b2;
  };
  struct BlockActs {
    std::vector<float> qkv, att, z, o, mean1, rstd1, y, cat, u, mean2, rstd2, out;
  };
  void ensure_batch(int64_t B);    // activations (forward)
  // The blocks for last-level units [u0, u1) (a unit: one token of the blocks' output, u = g *
  // tokens(L) + j over groups g = (window, axis)): one range of rows in every block's buffers.
  // team: this thread is one of forward's team (serial mode, a barrier per block before attention,
  // a group may be shared with the neighbouring threads; a failure is recorded there); nullptr:
  // whole groups, stage by stage on the pool. clock: marks the stages (nullptr: none).
  struct TeamFailure;
  void forward_blocks(int64_t u0, int64_t u1, TeamFailure* team, stages::Clock* clock);
  // How many threads run the blocks as a team for a forward of B windows (1: stage by stage).
  int team_threads(int64_t B) const;
  static constexpr int64_t kTeamMaxRowsFp32 = 1024;  // block 0's token rows, B * M * N (fp32)
  void ensure_grad_buffers();      // activation gradients, for the batch capacity (backward)

  VitConfig cfg_;
  int64_t pos_, pe_w_, pe_b_, d1g_, d1b_;
  Linear d0_, d3_;
  std::vector<Block> blocks_;
  Precision precision_ = Precision::Fp32;
  bool inference_ = false;  // prepare_inference was called: the weights stay as they are

  int64_t capacity_ = 0, grad_capacity_ = 0;  // buffers are sized for capacity_ >= B_ windows
  std::vector<float> patches_, h0_, a1_, mean_h_, rstd_h_, r_, logits_;
  std::vector<BlockActs> acts_;
  // gradient scratch (activation gradients)
  std::vector<float> dr_, da1_, dqkv_, dz_, dtmp_, dcat_, dy_;
  std::vector<std::vector<float>> dh_;  // dh_[l]: gradient of block l's input (l = 0..L)
};

}  // namespace harvit::nn
