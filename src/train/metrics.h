// Classification metrics, as the seed reports them (sklearn semantics).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace harvit::train {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;  // 0 where undefined (sklearn's zero_division=0)
  int64_t support = 0;                       // true windows of the class
};

struct Metrics {
  int64_t n = 0, C = 0;
  std::vector<int64_t> confusion;  // (C, C): rows = true class, columns = predicted
  double accuracy = 0;
  std::vector<ClassMetrics> per_class;
  double precision_weighted = 0, recall_weighted = 0, f1_weighted = 0;  // weighted by support
  double precision_macro = 0, recall_macro = 0, f1_macro = 0;
  // The seed's "per-class accuracy" is each class's recall: correct / true windows of the class.
  double class_accuracy(int64_t c) const { return per_class[c].recall; }
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
};

Metrics compute_metrics(const std::vector<int32_t>& truth, const std::vector<int32_t>& pred, int64_t C);

}  // namespace harvit::train
