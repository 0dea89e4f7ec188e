// A trained checkpoint ready to label raw windows: the model in the precision asked for and the
// checkpoint's own normalisation (the z-score statistics fitted on its training data). Batch
// labelling (Predictor, `harvit predict`) and the streaming recogniser (deploy/stream.h) both
// classify through this one class, so a window gets the same probabilities on either path.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "nn/checkpoint.h"
#include "nn/model.h"

namespace harvit::deploy {

class Classifier {
 public:
  // precision: "fp32" | "bf16" | "int8" (deploy/quantize.h). Errors name the checkpoint.
  explicit Classifier(const std::string& checkpoint, const std::string& precision = "fp32");
  Classifier(nn::LoadedCheckpoint ck, const std::string& precision, const std::string& source);

  const std::vector<std::string>& class_names() const { return classes_; }
  // The axes the model reads, in order (from the normalisation statistics; axis0.. when absent).
  const std::vector<std::string>& axis_names() const { return axes_; }
  int64_t window() const { return model_->T(); }
  int64_t axes() const { return model_->M(); }
  int64_t classes() const { return model_->C(); }
  const std::string& precision() const { return precision_; }
  nn::Model& model() { return *model_; }

  // Calibration written into the checkpoint by `harvit calibrate` (metadata extra.calibration,
  // fitted on the validation split): the temperature divides the logits before the softmax, and
  // a window whose top probability is below the threshold is "unknown". Uncalibrated: 1 and 0.
  double temperature() const { return temperature_; }
  float threshold() const { return threshold_; }
  bool calibrated() const { return calibrated_; }
  void set_calibration(double temperature, float threshold);
  // Whether probabilities (C) are below the threshold.
  bool unknown(const float* probs) const;

  // Class probabilities (B, C) for B raw windows (B, T, M), row-major, in the units the model was
  // trained on: normalised here, then forward and softmax. The pointer stays valid until the next
  // call. Allocates only when B exceeds every earlier B (so a streaming caller that warmed up at
  // B = 1 never allocates here).
  const float* classify(const float* windows, int64_t B);

 private:
  std::unique_ptr<nn::Model> model_;
  std::string precision_;
  std::vector<std::string> classes_, axes_;
  std::vector<float> mean_, std_;     // empty = the checkpoint has no normalisation
  std::vector<float> x_, probs_;       // scratch, grown to the largest batch seen
  double temperature_ = 1.0;
  float threshold_ = 0.0f;
  bool calibrated_ = false;
};

}  // namespace harvit::deploy
