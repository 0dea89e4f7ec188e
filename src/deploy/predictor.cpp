#include "deploy/predictor.h"

#include <algorithm>
#include <map>

#include "data/dataset.h"
#include "deploy/quantize.h"

namespace harvit::deploy {

Predictor::Predictor(const std::string& checkpoint, const std::string& precision) {
  auto ck = nn::load_checkpoint(checkpoint);
  model_ = std::move(ck.model);
  if (auto q = convert_precision(*model_, precision)) model_ = std::move(q);
  classes_ = ck.meta.class_names;
  if (classes_.empty())
    for (int64_t c = 0; c < model_->C(); ++c) classes_.push_back("class" + std::to_string(c));
  const auto& norm = ck.meta.normalization;
  if (norm.is_object() && norm.contains("mean") && norm.contains("std")) {
    mean_ = norm["mean"].get<std::vector<float>>();
    std_ = norm["std"].get<std::vector<float>>();
    if (static_cast<int64_t>(mean_.size()) != model_->M())
      fail(checkpoint + ": normalisation statistics have " + std::to_string(mean_.size()) + " axes, the model " +
           std::to_string(model_->M()));
  }
}

std::vector<WindowPrediction> Predictor::predict(const data::RawData& raw, int64_t stride, int64_t batch) {
  const int64_t T = model_->T(), M = model_->M(), C = model_->C();
  if (static_cast<int64_t>(raw.axis_names.size()) != M)
    fail(raw.name + ": the recording has " + std::to_string(raw.axis_names.size()) + " axes, the model expects " +
         std::to_string(M));
  if (stride <= 0) fail("stride must be positive");
  std::vector<int32_t> to_model(raw.class_names.size(), -1);  // recording class -> model class
  for (size_t k = 0; k < raw.class_names.size(); ++k) {
    auto it = std::find(classes_.begin(), classes_.end(), raw.class_names[k]);
    if (it != classes_.end()) to_model[k] = static_cast<int32_t>(it - classes_.begin());
  }
  std::vector<WindowPrediction> out;
  std::vector<float> x;
  auto flush = [&](size_t first) {
    const int64_t B = static_cast<int64_t>(out.size() - first);
    if (B == 0) return;
    if (!mean_.empty()) data::normalize_windows(x.data(), B, T, M, mean_, std_);
    model_->forward(x.data(), B);
    std::vector<int32_t> dummy(B, 0);
    model_->loss(dummy.data());  // fills the probabilities
    for (int64_t b = 0; b < B; ++b) {
      auto& p = out[first + b];
      p.probs.assign(model_->probs() + b * C, model_->probs() + (b + 1) * C);
      p.label = static_cast<int32_t>(std::max_element(p.probs.begin(), p.probs.end()) - p.probs.begin());
    }
    x.clear();
  };
  size_t first = 0;
  for (const auto& st : raw.streams) {
    for (int64_t s = 0; s + T <= st.size(); s += stride) {
      WindowPrediction p;
      p.source = st.source;
      p.subject = st.subject;
      p.start = s;
      p.start_time_ns = st.time_ns.empty() ? -1 : st.time_ns[s];
      std::map<int32_t, int64_t> votes;
      for (int64_t t = s; t < s + T; ++t)
        if (st.label[t] >= 0) votes[st.label[t]]++;
      if (!votes.empty()) {
        auto best = std::max_element(votes.begin(), votes.end(), [](auto& a, auto& b) { return a.second < b.second; });
        p.truth = to_model[best->first];
      }
      x.insert(x.end(), st.values.begin() + s * M, st.values.begin() + (s + T) * M);
      out.push_back(std::move(p));
      if (static_cast<int64_t>(out.size() - first) == batch) {
        flush(first);
        first = out.size();
      }
    }
  }
  flush(first);
  if (out.empty()) fail(raw.name + ": no stream is long enough for one window of " + std::to_string(T) + " samples");
  return out;
}

}  // namespace harvit::deploy
