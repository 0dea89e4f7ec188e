// The seed's sensor Vision Transformer (docs: ../shared/docs/model-spec.md), forward + backward.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "nn/params.h"

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

// One row of `harvit info`: a layer's output shape, parameters, multiply-adds per window.
struct LayerSummary {
  std::string name;
  Shape out_shape;  // per window (batch dimension shown as 1)
  int64_t params = 0;
  int64_t macs_linear = 0;     // conv/linear multiply-adds (what thop counts)
  int64_t macs_attention = 0;  // q k^T and att v multiply-adds (thop does not count these)
};
std::vector<LayerSummary> vit_summary(const VitConfig& cfg);

class Vit {
 public:
  explicit Vit(const VitConfig& cfg);

  const VitConfig& config() const { return cfg_; }
  ParamSlab& params() { return params_; }
  const ParamSlab& params() const { return params_; }

  // x (B, 1, T, M) -> logits (B, C). The pointer stays valid until the next forward.
  const float* forward(const float* x, int64_t B);
  // After forward: softmax probabilities and mean cross-entropy for labels (B).
  float loss(const int32_t* labels);
  const float* probs() const { return probs_.data(); }
  // After loss: accumulates d(mean loss)/d(params) into params().grads().
  void backward(const int32_t* labels);
  // General backward from a given logits gradient dlogits (B, C) (accumulates into grads).
  void backward_from_logits(const float* dlogits);

  int64_t batch() const { return B_; }

 private:
  struct Block {  // offsets into the slab
    int64_t wq, bq, wk, bk, wv, bv, wo, bo, g1, b1, wm, bm, g2, b2;
  };
  struct BlockActs {
    std::vector<float> q, k, v, att, z, o, mean1, rstd1, y, cat, u, mean2, rstd2, out;
  };
  void ensure_batch(int64_t B);

  VitConfig cfg_;
  ParamSlab params_;
  int64_t pos_, pe_w_, pe_b_, d0w_, d0b_, d1g_, d1b_, d3w_, d3b_;
  std::vector<Block> blocks_;

  int64_t B_ = 0, capacity_ = 0;  // buffers are sized for capacity_ >= B_ windows
  std::vector<float> patches_, h0_, a1_, mean_h_, rstd_h_, r_, logits_, probs_;
  std::vector<BlockActs> acts_;
  // gradient scratch (activation gradients)
  std::vector<float> dlogits_, dr_, da1_, dq_, dk_, dv_, dz_, datt_, dtmp_, dcat_, dy_;
  std::vector<std::vector<float>> dh_;  // dh_[l]: gradient of block l's input (l = 0..L)
};

}  // namespace harvit::nn
