// Trusting a classifier's confidence: temperature scaling (Guo et al., ICML 2017) fitted on the
// validation split, expected calibration error with its reliability bins, the risk-coverage curve
// of selective classification, the rejection threshold for a target coverage, and open-set scores
// with AUROC (a model meeting activities it was never trained on should say "unknown").
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "nn/model.h"

namespace harvit::train {

// A model's outputs on the windows of one split of a prepared dataset (all splits: split = 255),
// in batches. ds's windows are normalised with ds's statistics; when the model's own (the
// checkpoint's, mean/std) differ, the windows are mapped to them first (x * ds.std + ds.mean -
// mean) / std, so a dataset prepared separately (another class set) is seen as the model's
// training data was. features: also the penultimate features (Model::features).
struct Outputs {
  int64_t N = 0, C = 0, D = 0;
  std::vector<float> logits, features;  // (N, C), (N, D)
  std::vector<int32_t> labels;          // (N) in ds's class indexing
};
Outputs model_outputs(nn::Model& model, const data::Dataset& ds, uint8_t split, const std::vector<float>& mean,
                      const std::vector<float>& std, bool features);

// probs (N, C) = softmax(logits / T).
std::vector<float> softmax_t(const float* logits, int64_t N, int64_t C, double T);
// Mean negative log-likelihood of labels under softmax(logits / T).
double nll_t(const float* logits, const int32_t* labels, int64_t N, int64_t C, double T);
// The temperature minimising nll_t (golden-section search over log T in [1/20, 20]; the NLL is
// unimodal in T). Fails on an empty set.
double fit_temperature(const float* logits, const int32_t* labels, int64_t N, int64_t C);

struct ReliabilityBin {
  double lo = 0, hi = 0;         // confidence range [lo, hi)
  int64_t count = 0;
  double confidence = 0, accuracy = 0;  // means over the bin's windows (0 when empty)
};
struct Calibration {
  double ece = 0;   // sum_b |acc_b - conf_b| * n_b / N, equal-width bins of the top probability
  double mce = 0;   // max_b |acc_b - conf_b| over non-empty bins
  double nll = 0, accuracy = 0;
  std::vector<ReliabilityBin> bins;
  nlohmann::json to_json() const;
};
Calibration calibration(const float* probs, const int32_t* labels, int64_t N, int64_t C, int bins = 15);

// Selective classification: windows sorted by confidence, most confident first; point i keeps the
// first i+1 of them. coverage = kept / N, risk = errors among the kept / kept.
struct RiskCoverage {
  std::vector<double> coverage, risk, threshold;  // threshold: the confidence of the last kept
  double aurc = 0;  // area under the risk-coverage curve (mean risk over the coverages)
};
RiskCoverage risk_coverage(const std::vector<float>& confidence, const std::vector<uint8_t>& correct);
// The largest confidence threshold that keeps at least `coverage` of the windows (accept when
// confidence >= threshold).
float threshold_for_coverage(std::vector<float> confidence, double coverage);

// Area under the ROC curve of a score meant to be HIGHER for unknowns (ties count half): the
// probability that a random unknown scores above a random known.
double auroc(const std::vector<float>& known, const std::vector<float>& unknown);
// The share of unknowns flagged at the score threshold that keeps `coverage` of the knowns
// (accepts a known when its score is <= the threshold): the detection rate at 95 % coverage.
double detection_at_coverage(const std::vector<float>& known, const std::vector<float>& unknown, double coverage);

// Reliability diagram (accuracy against confidence per bin, before and after temperature
// scaling, bar widths by bin) and risk-coverage curves (one per name), as PNGs through gnuplot.
void plot_reliability(const Calibration& before, const Calibration& after, double temperature, const std::string& png,
                      const std::string& title);
void plot_risk_coverage(const std::vector<std::pair<std::string, RiskCoverage>>& curves, const std::string& png,
                        const std::string& title);

// Feature-distance scores on a model's penultimate features (D per window), fitted on the
// training windows: higher = further from what was learned.
//   knn         distance to the k-th nearest training feature after L2 normalisation
//               (Sun et al., ICML 2022);
//   mahalanobis min over classes of the Mahalanobis distance with class means and one shared
//               covariance (Lee et al., NeurIPS 2018), with a small ridge for stability.
class FeatureScorer {
 public:
  FeatureScorer(const std::vector<float>& train_features, const std::vector<int32_t>& train_labels, int64_t D,
                int64_t C, int k = 10);
  std::vector<float> knn(const std::vector<float>& features) const;
  std::vector<float> mahalanobis(const std::vector<float>& features) const;

 private:
  int64_t D_, C_, N_;
  int k_;
  std::vector<float> bank_;            // (N, D) L2-normalised
  std::vector<double> means_;          // (C, D)
  std::vector<double> precision_;      // (D, D) inverse of the shared covariance
};

}  // namespace harvit::train
