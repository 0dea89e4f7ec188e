// Labels the windows of whole raw recordings with a checkpoint, in batches, through the same
// Classifier (checkpoint normalisation + model) as the streaming recogniser (deploy/stream.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/loaders.h"
#include "deploy/classifier.h"

namespace harvit::deploy {

struct WindowPrediction {
  std::string source;
  int32_t subject = 0;
  int64_t start = 0;           // first sample of the window in its stream
  int64_t start_time_ns = -1;  // timestamp of that sample, -1 when the recording has none
  int32_t label = 0;           // predicted class index (the top probability)
  bool unknown = false;        // the top probability is below the checkpoint's calibrated threshold
  int32_t truth = -1;          // majority true class in the window (checkpoint's indexing), -1 unknown
  std::vector<float> probs;    // (C)
};

class Predictor {
 public:
  // precision: "fp32" or "int8" (deploy/quantize.h)
  explicit Predictor(const std::string& checkpoint, const std::string& precision = "fp32");
  const std::vector<std::string>& class_names() const { return clf_.class_names(); }
  int64_t window() const { return clf_.window(); }
  int64_t axes() const { return clf_.axes(); }
  // Every window of length T (stride `stride`) of every stream of `raw`, in order.
  // Streams' class names are matched to the checkpoint's by name for the truth column.
  std::vector<WindowPrediction> predict(const data::RawData& raw, int64_t stride, int64_t batch = 256);

 private:
  Classifier clf_;  // the streaming recogniser classifies through the same class
};

}  // namespace harvit::deploy
