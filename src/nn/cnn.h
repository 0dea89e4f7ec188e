// The CNN baseline for the seed's "ViT vs CNN" comparison: 1-D convolutions over time on the
// same (B, 1, T, M) windows (axes as input channels), ReLU, max-pooling, global average pooling
// and a linear classifier. PyTorch equivalent (parameter names match its state_dict):
//   convs = [Conv1d(M, c0, k, padding=k//2), Conv1d(c0, c1, k, ...), ...]; each followed by ReLU
//   and MaxPool1d(2) except the last; then mean over time; fc = Linear(c_last, C).
#pragma once
#include <vector>

#include "nn/model.h"

namespace harvit::nn {

struct CnnConfig {
  int64_t T = 128, M = 3, C = 6;
  std::vector<int64_t> channels = {64, 128, 128};
  int64_t kernel = 5;  // odd; "same" padding
  void validate() const;
  nlohmann::json to_json() const;
  static CnnConfig from_json(const nlohmann::json& j);
  int64_t length(size_t layer) const;  // time steps entering conv `layer`
};

// ---- the layers (channels-last: x (B, T, Cin)) ------------------------------------------------
// conv1d: x (B, T, Cin), w (Cout, Cin, K), b (Cout) -> out (B, T, Cout), zero "same" padding;
// cols (B*T, Cin*K) is the im2col buffer kept for backward.
void conv1d_forward(float* out, float* cols, const float* x, const float* w, const float* b, int64_t B,
                    int64_t T, int64_t Cin, int64_t Cout, int64_t K);
// The two halves of the conv around its GEMM: im2col (x -> cols) and col2im (dcols -> dx +=).
void conv1d_im2col(float* cols, const float* x, int64_t B, int64_t T, int64_t Cin, int64_t K);
void conv1d_col2im(float* dx, const float* dcols, int64_t B, int64_t T, int64_t Cin, int64_t K);
// dout (B, T, Cout) -> dx (B, T, Cin) +=, dw, db +=; dcols (B*T, Cin*K) is scratch.
void conv1d_backward(float* dx, float* dw, float* db, float* dcols, const float* dout, const float* cols,
                     const float* w, int64_t B, int64_t T, int64_t Cin, int64_t Cout, int64_t K);
// max over pairs of time steps: x (B, T, Cc) -> out (B, T/2, Cc); arg (B, T/2, Cc) keeps 0/1.
void maxpool2_forward(float* out, uint8_t* arg, const float* x, int64_t B, int64_t T, int64_t Cc);
void maxpool2_backward(float* dx, const float* dout, const uint8_t* arg, int64_t B, int64_t T, int64_t Cc);
// mean over time: x (B, T, Cc) -> out (B, Cc)
void avgpool_time_forward(float* out, const float* x, int64_t B, int64_t T, int64_t Cc);
void avgpool_time_backward(float* dx, const float* dout, int64_t B, int64_t T, int64_t Cc);
// out (n) = max(0, x)
void relu_forward(float* out, const float* x, int64_t n);

class Cnn : public Model {
 public:
  explicit Cnn(const CnnConfig& cfg);
  const CnnConfig& config() const { return cfg_; }
  std::string kind() const override { return "cnn"; }
  nlohmann::json config_json() const override { return cfg_.to_json(); }
  std::vector<LayerSummary> summary() const override;
  int64_t T() const override { return cfg_.T; }
  int64_t M() const override { return cfg_.M; }
  int64_t C() const override { return cfg_.C; }
  const float* forward(const float* x, int64_t B) override;
  void backward_from_logits(const float* dlogits) override;
  const float* features() const override { return feat_.data(); }  // mean over time of the last conv
  int64_t feature_dim() const override { return cfg_.channels.back(); }
  // int8 / bf16: the conv layers' GEMMs (nn/linear.h); the last, tiny fc layer stays fp32.
  void set_precision(Precision p) override;
  void params_changed() override;
  void prepare_inference() override;
  Precision precision() const override { return precision_; }

 private:
  struct Layer {
    int64_t w, b;  // slab offsets
    Linear lin;    // the conv as a GEMM over the im2col buffer: (B*T, Cin*K) x (Cout, Cin*K)^T
    std::vector<float> cols, pre, act, pooled;  // im2col, conv output, ReLU output, pooled
    std::vector<uint8_t> arg;
  };
  CnnConfig cfg_;
  std::vector<Layer> layers_;
  int64_t fc_w_ = 0, fc_b_ = 0, capacity_ = 0;
  Precision precision_ = Precision::Fp32;
  std::vector<float> feat_, logits_, dfeat_, dIn_, dAct_, dPre_, dcols_;
};

}  // namespace harvit::nn
