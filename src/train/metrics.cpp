#include "train/metrics.h"

#include "core/tensor.h"

namespace harvit::train {

Metrics compute_metrics(const std::vector<int32_t>& truth, const std::vector<int32_t>& pred, int64_t C) {
  if (truth.size() != pred.size()) fail("metrics: " + std::to_string(truth.size()) + " labels but " + std::to_string(pred.size()) + " predictions");
  Metrics m;
  m.n = static_cast<int64_t>(truth.size());
  m.C = C;
  m.confusion.assign(C * C, 0);
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    if (truth[i] < 0 || truth[i] >= C || pred[i] < 0 || pred[i] >= C) fail("metrics: class index outside [0, C)");
    m.confusion[truth[i] * C + pred[i]]++;
    correct += truth[i] == pred[i];
  }
  m.accuracy = m.n ? double(correct) / m.n : 0.0;
  m.per_class.resize(C);
  int64_t present = 0;
  for (int64_t c = 0; c < C; ++c) {
    int64_t tp = m.confusion[c * C + c], row = 0, col = 0;
    for (int64_t k = 0; k < C; ++k) row += m.confusion[c * C + k], col += m.confusion[k * C + c];
    ClassMetrics& pc = m.per_class[c];
    pc.support = row;
    pc.precision = col ? double(tp) / col : 0.0;
    pc.recall = row ? double(tp) / row : 0.0;
    pc.f1 = pc.precision + pc.recall > 0 ? 2 * pc.precision * pc.recall / (pc.precision + pc.recall) : 0.0;
    if (m.n) {
      const double w = double(row) / m.n;
      m.precision_weighted += w * pc.precision;
      m.recall_weighted += w * pc.recall;
      m.f1_weighted += w * pc.f1;
    }
    m.precision_macro += pc.precision;
    m.recall_macro += pc.recall;
    m.f1_macro += pc.f1;
    ++present;
  }
  // Macro averages over all C labels, like sklearn with labels=range(C).
  if (present) {
    m.precision_macro /= present;
    m.recall_macro /= present;
    m.f1_macro /= present;
  }
  return m;
}

nlohmann::json Metrics::to_json(const std::vector<std::string>& names) const {
  nlohmann::json pc = nlohmann::json::array();
  for (int64_t c = 0; c < C; ++c)
    pc.push_back({{"class", c < (int64_t)names.size() ? names[c] : std::to_string(c)},
                  {"accuracy", per_class[c].recall}, {"precision", per_class[c].precision},
                  {"recall", per_class[c].recall}, {"f1", per_class[c].f1}, {"support", per_class[c].support}});
  std::vector<std::vector<int64_t>> cm(C, std::vector<int64_t>(C));
  for (int64_t i = 0; i < C; ++i)
    for (int64_t j = 0; j < C; ++j) cm[i][j] = confusion[i * C + j];
  return {{"n", n}, {"accuracy", accuracy},
          {"precision_weighted", precision_weighted}, {"recall_weighted", recall_weighted}, {"f1_weighted", f1_weighted},
          {"precision_macro", precision_macro}, {"recall_macro", recall_macro}, {"f1_macro", f1_macro},
          {"per_class", pc}, {"confusion", cm}};
}

}  // namespace harvit::train
