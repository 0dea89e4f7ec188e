#include "deploy/predictor.h"

#include <algorithm>
#include <map>

#include "core/tensor.h"

namespace harvit::deploy {

Predictor::Predictor(const std::string& checkpoint, const std::string& precision) : clf_(checkpoint, precision) {}

std::vector<WindowPrediction> Predictor::predict(const data::RawData& raw, int64_t stride, int64_t batch) {
  const int64_t T = clf_.window(), M = clf_.axes(), C = clf_.classes();
  const auto& classes_ = clf_.class_names();
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
    const float* probs = clf_.classify(x.data(), B);
    for (int64_t b = 0; b < B; ++b) {
      auto& p = out[first + b];
      p.probs.assign(probs + b * C, probs + (b + 1) * C);
      p.label = static_cast<int32_t>(std::max_element(p.probs.begin(), p.probs.end()) - p.probs.begin());
      p.unknown = clf_.unknown(p.probs.data());
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
