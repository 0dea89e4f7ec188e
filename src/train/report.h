// The seed's result table (params, FLOPs, latency, accuracy, precision/recall/F1, per-class
// accuracy, confusion matrix), its JSON, the PNG pictures (via gnuplot) and report.md.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "nn/model.h"
#include "nn/checkpoint.h"
#include "train/calibration.h"
#include "train/metrics.h"

namespace harvit::train {

struct Latency {
  int threads = 0;
  int64_t windows = 0;
  double b1_median_ms = 0, b1_p99_ms = 0;
  int64_t batch = 256;
  double batch_windows_per_s = 0;
};
// Batch-1 latency over `n` single-window forwards (median, p99) and batch throughput.
Latency measure_latency(nn::Model& model, const data::Dataset& ds, int64_t n = 1000, int64_t batch = 256);

struct EvalOptions {
  std::string split = "test";
  int64_t latency_windows = 1000;
  bool latency = true;
  // Reduced-precision evaluation: `convert` builds the model to evaluate from the fp32 one
  // (the CLI passes deploy::convert_precision; src/train does not depend on src/deploy).
  // The table then also reports the fp32 model's accuracy and how often both agree.
  std::string precision = "fp32";
  std::function<std::unique_ptr<nn::Model>(const nn::Model&)> convert;
};

struct EvalResult {
  nlohmann::json table;  // everything, as written to eval.json
  Metrics test, val;
  // Calibration of the evaluated split: ECE with T = 1 and with the temperature fitted on the
  // validation split (none without one), and the risk-coverage of the calibrated top probability.
  bool calibrated = false;
  double temperature = 1.0;
  Calibration cal_before, cal_after;
  RiskCoverage risk;
  std::string text;      // the printed table
};
EvalResult evaluate_checkpoint(const std::string& ckpt_path, const data::Dataset& ds, const EvalOptions& opt);
// Fails, naming ckpt_path, unless the model reads ds's windows: the window shape, the classes and
// the normalisation statistics it was trained with (eval and explain check the same).
void check_model_fits_data(const std::string& ckpt_path, const nn::Model& model, const nn::CheckpointMeta& meta,
                           const data::Dataset& ds);

// Runs a gnuplot script that writes `png` (the script is kept beside it as png.gp while it runs);
// fails with a clear message if gnuplot is missing, reports an error or writes nothing.
void run_gnuplot(const std::string& script, const std::string& png);
// A string for a gnuplot double-quoted title or label (quotes, backslashes, enhanced-text '_').
std::string gnuplot_escape(const std::string& s);

// PNGs through gnuplot (fails with a clear message if gnuplot is missing or reports an error).
void plot_confusion(const Metrics& m, const std::vector<std::string>& class_names, const std::string& png,
                    const std::string& title);
void plot_curves(const nlohmann::json& history, const std::string& png);

// Writes report.md (and the pictures) into dir; returns its path.
std::string write_report(const std::string& dir, const EvalResult& r, const nlohmann::json& history,
                         const std::string& command);

}  // namespace harvit::train
