#include "deploy/classifier.h"

#include <algorithm>
#include <cmath>

#include "core/tensor.h"
#include "deploy/quantize.h"

namespace harvit::deploy {

Classifier::Classifier(const std::string& checkpoint, const std::string& precision)
    : Classifier(nn::load_checkpoint(checkpoint), precision, checkpoint) {}

Classifier::Classifier(nn::LoadedCheckpoint ck, const std::string& precision, const std::string& source)
    : model_(std::move(ck.model)), precision_(precision) {
  if (auto q = convert_precision(*model_, precision)) model_ = std::move(q);
  classes_ = ck.meta.class_names;
  if (classes_.empty())
    for (int64_t c = 0; c < model_->C(); ++c) classes_.push_back("class" + std::to_string(c));
  if (static_cast<int64_t>(classes_.size()) != model_->C())
    fail(source + ": " + std::to_string(classes_.size()) + " class names for a model of " +
         std::to_string(model_->C()) + " classes");
  const auto& norm = ck.meta.normalization;
  if (norm.is_object() && norm.contains("mean") && norm.contains("std")) {
    mean_ = norm["mean"].get<std::vector<float>>();
    const auto sd = norm["std"].get<std::vector<float>>();
    if (static_cast<int64_t>(mean_.size()) != model_->M() || sd.size() != mean_.size())
      fail(source + ": normalisation statistics have " + std::to_string(mean_.size()) + " axes, the model " +
           std::to_string(model_->M()));
    for (float s : sd) {
      if (!(s > 0.0f) || !std::isfinite(s)) fail(source + ": normalisation has a non-positive or non-finite std");
      std_.push_back(s);
    }
    if (norm.contains("axes") && norm["axes"].is_array()) axes_ = norm["axes"].get<std::vector<std::string>>();
  }
  if (static_cast<int64_t>(axes_.size()) != model_->M()) {
    axes_.clear();
    for (int64_t m = 0; m < model_->M(); ++m) axes_.push_back("axis" + std::to_string(m));
  }
}

const float* Classifier::classify(const float* windows, int64_t B) {
  const int64_t T = model_->T(), M = model_->M(), C = model_->C();
  if (static_cast<int64_t>(x_.size()) < B * T * M) x_.resize(B * T * M);
  if (static_cast<int64_t>(probs_.size()) < B * C) probs_.resize(B * C);
  const float* in = windows;
  if (!mean_.empty()) {  // z-score per axis, the same arithmetic as data::normalize_windows
    float* x = x_.data();
    for (int64_t r = 0; r < B * T; ++r)
      for (int64_t m = 0; m < M; ++m) x[r * M + m] = (windows[r * M + m] - mean_[m]) / std_[m];
    in = x;
  }
  const float* logits = model_->forward(in, B);
  for (int64_t b = 0; b < B; ++b) {  // softmax, in double for the sum (as Model::loss)
    const float* z = logits + b * C;
    float* p = probs_.data() + b * C;
    const float mx = *std::max_element(z, z + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += p[c] = std::exp(z[c] - mx);
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t c = 0; c < C; ++c) p[c] *= inv;
  }
  return probs_.data();
}

}  // namespace harvit::deploy
