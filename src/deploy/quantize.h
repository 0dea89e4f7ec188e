// Int8 inference for deployment: the ViT's linear layers (q|k|v, attention output, patch merge,
// first dense layer) run as u8 x s8 -> s32 GEMMs (harvit's kernel or oneDNN); patch embedding, attention
// scores, LayerNorm and the last (tiny) layer stay fp32.
//
// Quantisation (no calibration data needed):
//   - weights per output channel, symmetric, to 7 bits (|q| <= 63): without VNNI (this
//     machine's AVX2) the u8 x s8 kernels sum pairs of products in int16 with saturation, and
//     2 * 255 * 63 < 32767 keeps every pair exact;
//   - activations per row (token) at run time: u8 with scale max|x| / 255 when the whole input is
//     non-negative (the ReLU outputs most layers read), else zero point 128 and scale max|x| / 127.
// The accuracy cost is measured, not assumed: `harvit eval --precision int8` reports it beside
// fp32 (docs/performance.md).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "nn/model.h"
#include "nn/vit.h"

namespace harvit::deploy {

// out (R, OUT) = dequant(quant(inp) W8^T) + b for inp (R, IN); W from fp32 (OUT, IN).
// With AVX2 the product runs in harvit's own kernel over weights packed once at construction
// (vpmaddubsw/vpmaddwd, one row x 64 outputs per register tile; zero-point compensation from
// per-output weight sums computed once, dequantisation fused into the store); oneDNN's u8s8s32
// GEMM API re-packs the weights and re-sums them on every call, which costs most for a few rows
// (the batch-1 dense layer is a 1-row GEMV). Up to 128 rows (every layer at batch 1) harvit's
// kernel runs; above, oneDNN's GEMM, whose cache blocking wins on big inputs. Without AVX2,
// always oneDNN.
class Int8Linear {
 public:
  Int8Linear() = default;
  Int8Linear(const float* w, const float* b, int64_t IN, int64_t OUT);
  void forward(float* out, const float* inp, int64_t R);
  int64_t in() const { return IN_; }
  int64_t out() const { return OUT_; }
  // Whether R rows go through harvit's AVX2 kernel (compiled in, and R small enough or forced
  // by HARVIT_INT8_KERNEL=harvit) rather than oneDNN's GEMM.
  static bool use_own_kernel(int64_t R);

 private:
  int64_t IN_ = 0, OUT_ = 0, INp_ = 0, OUTp_ = 0;  // INp_ % 4 == 0, OUTp_ % 8 == 0
  std::vector<int8_t> w8_;      // (OUT, IN) row-major, for the oneDNN fallback
  std::vector<int8_t> wpack_;   // (OUTp/8, INp/4, 8, 4): the AVX2 kernel's layout
  std::vector<int32_t> wsum_;   // (OUTp) sum_k w8[o][k], for the zero-point compensation
  std::vector<float> wscale_, bias_;  // (OUTp), zero-padded
  std::vector<uint8_t> a8_;     // scratch: quantised input (R, INp)
  std::vector<float> ascale_;   // scratch: per-row input scales
  std::vector<int32_t> azp_;    // scratch: per-row input zero points (0 or 128)
  std::vector<int32_t> acc_;    // scratch: int32 products (fallback)
};

// The seed ViT with int8 linear layers; inference only (backward fails). Built from a trained
// fp32 ViT; its params() keep the fp32 values so checkpoints and summaries still work.
class Int8Vit : public nn::Model {
 public:
  explicit Int8Vit(const nn::Model& fp32);
  std::string kind() const override { return "vit"; }
  nlohmann::json config_json() const override;
  std::vector<nn::LayerSummary> summary() const override { return nn::vit_summary(cfg_); }
  int64_t T() const override { return cfg_.T; }
  int64_t M() const override { return cfg_.M; }
  int64_t C() const override { return cfg_.C; }
  const float* forward(const float* x, int64_t B) override;
  void backward_from_logits(const float*) override;

 private:
  struct Block {
    Int8Linear qkv, o, merge;
    const float *g1, *b1, *g2, *b2;
  };
  nn::VitConfig cfg_;
  std::vector<Block> blocks_;
  Int8Linear d0_;
  const float *pos_, *pe_w_, *pe_b_, *d1g_, *d1b_, *d3w_, *d3b_;
  int64_t capacity_ = 0;
  std::vector<float> patches_, h_, qkv_, att_, z_, o_, y_, cat_, u_, mean_, rstd_, a1_, r_, logits_;
};

// "fp32" returns nullptr (use the model as it is); "int8" returns the quantised ViT.
// Fails with a clear message for unknown precisions and for models int8 does not support.
std::unique_ptr<nn::Model> convert_precision(const nn::Model& model, const std::string& precision);

}  // namespace harvit::deploy
