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
  model_->prepare_inference();
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
  const auto& extra = ck.meta.extra;
  if (extra.is_object() && extra.contains("calibration")) {
    const auto& c = extra["calibration"];
    if (!c.is_object() || !c.contains("temperature") || !c["temperature"].is_number() || !c.contains("threshold") ||
        !c["threshold"].is_number())
      fail(source + ": calibration metadata needs numeric \"temperature\" and \"threshold\"");
    try {
      set_calibration(c["temperature"].get<double>(), c["threshold"].get<float>());
    } catch (const std::exception& e) {
      fail(source + ": " + e.what());
    }
  }
  if (static_cast<int64_t>(axes_.size()) != model_->M()) {
    axes_.clear();
    for (int64_t m = 0; m < model_->M(); ++m) axes_.push_back("axis" + std::to_string(m));
  }
}

void Classifier::set_calibration(double temperature, float threshold) {
  if (!(temperature > 0) || !std::isfinite(temperature) || !(threshold >= 0.0f && threshold <= 1.0f))
    fail("calibration: the temperature must be positive and finite and the threshold in [0, 1], got " +
         std::to_string(temperature) + " and " + std::to_string(threshold));
  temperature_ = temperature;
  threshold_ = threshold;
  calibrated_ = true;
}

bool Classifier::unknown(const float* p) const {
  return *std::max_element(p, p + model_->C()) < threshold_;
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
  const float inv_t = static_cast<float>(1.0 / temperature_);
  for (int64_t b = 0; b < B; ++b) {  // softmax(z / T), in double for the sum (as Model::loss)
    const float* z = logits + b * C;
    float* p = probs_.data() + b * C;
    const float mx = *std::max_element(z, z + C);
    double sum = 0;
    for (int64_t c = 0; c < C; ++c) sum += p[c] = std::exp(temperature_ == 1.0 ? z[c] - mx : (z[c] - mx) * inv_t);
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t c = 0; c < C; ++c) p[c] *= inv;
  }
  return probs_.data();
}

}  // namespace harvit::deploy
