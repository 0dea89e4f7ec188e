#include "nn/model.h"

#include <algorithm>

#include "nn/cnn.h"
#include "nn/layers.h"
#include "nn/vit.h"

namespace harvit::nn {

void Model::set_precision(Precision p) {
  if (p != Precision::Fp32)
    fail(std::string(precision_name(p)) + " layers are not implemented for a " + kind() + " (use fp32)");
}

void Model::set_batch(int64_t B) {
  if (B <= 0) fail("batch size must be positive, got " + std::to_string(B));
  B_ = B;
  if (static_cast<int64_t>(probs_.size()) < B * C()) {
    probs_.resize(B * C());
    dlogits_.resize(B * C());
  }
}

void Model::set_loss_options(float label_smoothing, std::vector<float> class_weights) {
  if (label_smoothing < 0 || label_smoothing >= 1) fail("label smoothing must be in [0, 1)");
  if (!class_weights.empty() && static_cast<int64_t>(class_weights.size()) != C())
    fail(std::to_string(class_weights.size()) + " class weights for " + std::to_string(C()) + " classes");
  label_smoothing_ = label_smoothing;
  class_weights_ = std::move(class_weights);
}

LossOptions Model::loss_options() const {
  return {label_smoothing_, class_weights_.empty() ? nullptr : class_weights_.data()};
}

void Model::set_grad_stages(const std::vector<std::vector<std::string>>& prefixes) {
  grad_stages_.clear();
  int64_t covered = 0;
  for (const auto& stage : prefixes) {
    int64_t lo = params_.count(), hi = 0, size = 0;
    for (const auto& p : params_.infos())
      for (const auto& prefix : stage)
        if (p.name.compare(0, prefix.size(), prefix) == 0) {
          lo = std::min(lo, p.offset), hi = std::max(hi, p.offset + p.size), size += p.size;
          break;
        }
    if (size == 0 || hi - lo != size) fail("internal: gradient stage " + stage.front() + "... is not one range of the slab");
    for (const auto& [a, b] : grad_stages_)
      if (lo < b && a < hi) fail("internal: gradient stages " + stage.front() + "... overlaps another");
    grad_stages_.emplace_back(lo, hi);
    covered += size;
  }
  if (covered != params_.count()) fail("internal: the gradient stages do not cover every parameter");
}

double Model::loss_weight(const int32_t* labels, int64_t n) const {
  if (class_weights_.empty()) return static_cast<double>(n);
  double w = 0;
  for (int64_t b = 0; b < n; ++b) w += class_weights_[labels[b]];
  return w;
}

float Model::loss(const int32_t* labels) {
  if (!logits_ptr_) fail("Model::loss called before forward");
  return softmax_cross_entropy_forward(probs_.data(), logits_ptr_, labels, B_, C(), loss_options());
}

void Model::backward(const int32_t* labels) {
  std::fill(dlogits_.begin(), dlogits_.begin() + B_ * C(), 0.0f);
  softmax_cross_entropy_backward(dlogits_.data(), probs_.data(), labels, B_, C(), loss_options());
  backward_from_logits(dlogits_.data());
}

std::unique_ptr<Model> make_model(const nlohmann::json& config) {
  const std::string kind = config.value("model", "vit");
  if (kind == "vit") return std::make_unique<Vit>(VitConfig::from_json(config));
  if (kind == "cnn") return std::make_unique<Cnn>(CnnConfig::from_json(config));
  fail("unknown model kind '" + kind + "' in the config (vit, cnn)");
}

}  // namespace harvit::nn
