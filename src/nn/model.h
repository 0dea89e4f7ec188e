// What every classifier offers the trainer, evaluator and checkpoints: windows (B, 1, T, M) in,
// logits (B, C) out, a parameter slab, a JSON config that rebuilds it. The ViT and the CNN
// baseline implement it; softmax cross-entropy lives here once.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/layers.h"
#include "nn/linear.h"
#include "nn/params.h"

namespace harvit::nn {

// One row of `harvit info`: a layer's output shape, parameters, multiply-adds per window.
struct LayerSummary {
  std::string name;
  Shape out_shape;  // per window (batch dimension shown as 1)
  int64_t params = 0;
  int64_t macs_linear = 0;     // conv/linear multiply-adds (what thop counts)
  int64_t macs_attention = 0;  // q k^T and att v multiply-adds (thop does not count these)
};

class Model {
 public:
  virtual ~Model() = default;
  virtual std::string kind() const = 0;  // "vit", "cnn"
  virtual nlohmann::json config_json() const = 0;
  virtual std::vector<LayerSummary> summary() const = 0;
  virtual int64_t T() const = 0;
  virtual int64_t M() const = 0;
  virtual int64_t C() const = 0;

  ParamSlab& params() { return params_; }
  const ParamSlab& params() const { return params_; }

  // x (B, 1, T, M) -> logits (B, C). The pointer stays valid until the next forward.
  virtual const float* forward(const float* x, int64_t B) = 0;
  // After forward: softmax probabilities and the cross-entropy for labels (B) (plain, or with
  // label smoothing / class weights as set by set_loss_options).
  float loss(const int32_t* labels);
  void set_loss_options(float label_smoothing, std::vector<float> class_weights);
  // What loss() divides by for these labels: their class weights summed (n without weights). A
  // batch cut into shares has loss = sum over shares of loss_share * weight_share / weight_all.
  double loss_weight(const int32_t* labels, int64_t n) const;
  const float* probs() const { return probs_.data(); }
  // After loss: accumulates d(mean loss)/d(params) into params().grads().
  void backward(const int32_t* labels);
  // After forward: the penultimate features (B, feature_dim()), the input of the last linear
  // layer (open-set scores measure distances there; train/calibration.h).
  virtual const float* features() const = 0;
  virtual int64_t feature_dim() const = 0;
  // Backward from a given logits gradient dlogits (B, C) (accumulates into grads).
  virtual void backward_from_logits(const float* dlogits) = 0;
  // The slab ranges [first, last) whose gradients a backward pass completes one after the other,
  // in that order, disjoint and covering the slab; empty when the model does not say (then the
  // whole slab is final only when backward returns). A data-parallel trainer starts summing a
  // range over the ranks while the backward pass goes on to the next.
  const std::vector<std::pair<int64_t, int64_t>>& grad_stages() const { return grad_stages_; }
  // Called with the index of each grad stage as soon as its gradients are final (none: nothing).
  void on_grad_stage(std::function<void(size_t stage)> f) { grad_stage_done_ = std::move(f); }
  int64_t batch() const { return B_; }
  // The precision of the model's linear layers (nn/linear.h). The base model offers fp32 only;
  // setting another fails naming the model kind.
  virtual void set_precision(Precision p);
  virtual Precision precision() const { return Precision::Fp32; }
  // Tells the model that params().values() changed (an optimizer step): bf16 layers round their
  // weight copies again, fp32 layers pack their panels (if any) again when next used; int8 models
  // are not trained.
  virtual void params_changed() {}
  // Tells the model it will run inference only: fp32 forwards of a few windows (batch 1) may then
  // run over weights packed once (nn/linear.h) on the thread pool. Changing the weights afterwards
  // needs params_changed(), as for bf16. Training does not call it: a finite-difference check or
  // a test that edits values() directly stays exact.
  virtual void prepare_inference() {}

 protected:
  // Sizes the loss buffers for batch B; models call it from forward.
  void set_batch(int64_t B);
  // Models with grad stages: the ranges of the parameters whose names start with each prefix, in
  // backward order (checked: contiguous, disjoint, covering the slab); stage_done(i) from
  // backward_from_logits as each completes.
  void set_grad_stages(const std::vector<std::vector<std::string>>& prefixes);
  void stage_done(size_t i) const {
    if (grad_stage_done_) grad_stage_done_(i);
  }
  const float* logits_ptr_ = nullptr;  // set by forward
  ParamSlab params_;
  int64_t B_ = 0;

 private:
  std::vector<float> probs_, dlogits_, class_weights_;
  std::vector<std::pair<int64_t, int64_t>> grad_stages_;
  std::function<void(size_t)> grad_stage_done_;
  float label_smoothing_ = 0.0f;
  LossOptions loss_options() const;
};

// Builds a model from a config (the "model" field picks the kind) with fresh parameters.
std::unique_ptr<Model> make_model(const nlohmann::json& config);

}  // namespace harvit::nn
