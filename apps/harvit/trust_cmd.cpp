// `harvit calibrate` and `harvit openset`: how far a model's confidence can be trusted.
//   calibrate  fits a temperature on the validation split (minimum NLL) and the rejection
//              threshold that keeps --coverage of the validation windows, and writes both into
//              the checkpoint (metadata extra.calibration, read by predict and stream); reports
//              ECE before/after on validation and test, and draws the reliability diagram and
//              the risk-coverage curve of the test split. Nothing is chosen on the test split.
//   openset    scores windows of classes the model never saw (another prepared dataset, e.g. HAPT
//              with --transitions) against the known test windows: max-softmax, energy, kNN and
//              Mahalanobis distances on the penultimate features (fitted on the training split);
//              AUROC and the unknowns caught at 95 % known coverage.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "commands.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "nn/checkpoint.h"
#include "train/calibration.h"

namespace harvit::cli {

namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<float> norm_vec(const nn::CheckpointMeta& meta, const char* key) {
  const auto& n = meta.normalization;
  return n.is_object() && n.contains(key) ? n[key].get<std::vector<float>>() : std::vector<float>{};
}

std::vector<float> top_prob(const std::vector<float>& probs, int64_t N, int64_t C) {
  std::vector<float> out(N);
  for (int64_t i = 0; i < N; ++i) out[i] = *std::max_element(probs.begin() + i * C, probs.begin() + (i + 1) * C);
  return out;
}

std::vector<uint8_t> correct(const std::vector<float>& probs, const std::vector<int32_t>& y, int64_t C) {
  std::vector<uint8_t> ok(y.size());
  for (size_t i = 0; i < y.size(); ++i)
    ok[i] = std::max_element(probs.begin() + i * C, probs.begin() + (i + 1) * C) - (probs.begin() + i * C) == y[i];
  return ok;
}

// The model's class index of each of ds's classes (by name), -1 where the model lacks it.
std::vector<int32_t> to_model_classes(const data::Dataset& ds, const std::vector<std::string>& model_classes) {
  std::vector<int32_t> map(ds.class_names.size(), -1);
  for (size_t k = 0; k < ds.class_names.size(); ++k) {
    auto it = std::find(model_classes.begin(), model_classes.end(), ds.class_names[k]);
    if (it != model_classes.end()) map[k] = static_cast<int32_t>(it - model_classes.begin());
  }
  return map;
}

struct CalibrateArgs {
  std::string model, data, out, report;
  double coverage = 0.95;
  int bins = 15;
};

int run_calibrate(const CalibrateArgs& a) {
  auto ck = nn::load_checkpoint(a.model);
  const auto ds = data::load_dataset(a.data);
  nn::Model& m = *ck.model;
  const int64_t C = m.C();
  const auto mean = norm_vec(ck.meta, "mean"), sd = norm_vec(ck.meta, "std");
  if (ds.count(data::kVal) == 0) fail(a.data + ": no validation windows: calibration is fitted on validation only");
  auto val = train::model_outputs(m, ds, data::kVal, mean, sd, false);
  const auto map = to_model_classes(ds, ck.meta.class_names.empty() ? ds.class_names : ck.meta.class_names);
  for (auto& y : val.labels) {
    if (map[y] < 0) fail(a.data + ": validation class '" + ds.class_names[y] + "' is not one of the model's classes");
    y = map[y];
  }
  const double T = train::fit_temperature(val.logits.data(), val.labels.data(), val.N, C);
  const auto pv1 = train::softmax_t(val.logits.data(), val.N, C, 1.0), pvT = train::softmax_t(val.logits.data(), val.N, C, T);
  const float thr = train::threshold_for_coverage(top_prob(pvT, val.N, C), a.coverage);
  const auto cv1 = train::calibration(pv1.data(), val.labels.data(), val.N, C, a.bins);
  const auto cvT = train::calibration(pvT.data(), val.labels.data(), val.N, C, a.bins);
  json report = {{"model", a.model}, {"data", a.data}, {"temperature", T}, {"threshold", thr},
                 {"target_coverage", a.coverage}, {"val", {{"windows", val.N}, {"before", cv1.to_json()}, {"after", cvT.to_json()}}}};
  std::printf("temperature %.4f (fitted on %lld validation windows: NLL %.4f -> %.4f, ECE %.4f -> %.4f)\n", T,
              (long long)val.N, cv1.nll, cvT.nll, cv1.ece, cvT.ece);
  std::printf("threshold %.4f: top probability below it is \"unknown\" (keeps %.1f %% of the validation windows)\n",
              thr, 100 * a.coverage);
  if (ds.count(data::kTest) > 0) {  // reported, never used for a choice
    auto test = train::model_outputs(m, ds, data::kTest, mean, sd, false);
    bool all_known = true;
    for (auto& y : test.labels) all_known &= (y = map[y]) >= 0;
    if (all_known) {
      const auto p1 = train::softmax_t(test.logits.data(), test.N, C, 1.0), pT = train::softmax_t(test.logits.data(), test.N, C, T);
      const auto c1 = train::calibration(p1.data(), test.labels.data(), test.N, C, a.bins);
      const auto cT = train::calibration(pT.data(), test.labels.data(), test.N, C, a.bins);
      const auto conf = top_prob(pT, test.N, C);
      const auto ok = correct(pT, test.labels, C);
      int64_t kept = 0, kept_ok = 0;
      for (int64_t i = 0; i < test.N; ++i)
        if (conf[i] >= thr) ++kept, kept_ok += ok[i];
      const auto rc = train::risk_coverage(conf, ok);
      std::printf("test (%lld windows): ECE %.4f -> %.4f, NLL %.4f -> %.4f; at the threshold %.1f %% answered with "
                  "accuracy %.4f (all: %.4f); AURC %.4f\n",
                  (long long)test.N, c1.ece, cT.ece, c1.nll, cT.nll, 100.0 * kept / test.N,
                  kept ? double(kept_ok) / kept : 0.0, cT.accuracy, rc.aurc);
      report["test"] = {{"windows", test.N}, {"before", c1.to_json()}, {"after", cT.to_json()},
                        {"coverage_at_threshold", double(kept) / test.N},
                        {"accuracy_at_threshold", kept ? double(kept_ok) / kept : 0.0}, {"aurc", rc.aurc}};
      if (!a.report.empty()) {
        fs::create_directories(a.report);
        train::plot_reliability(c1, cT, T, a.report + "/reliability.png",
                                "Reliability on the test split (temperature fitted on validation)");
        train::plot_risk_coverage({{"max softmax, T fitted", rc}}, a.report + "/risk_coverage.png",
                                  "Risk-coverage on the test split");
      }
    }
  }
  if (!a.report.empty()) {
    fs::create_directories(a.report);
    std::ofstream(a.report + "/calibration.json") << report.dump(2) << "\n";
    std::printf("report: %s/calibration.json%s\n", a.report.c_str(),
                report.contains("test") ? ", reliability.png, risk_coverage.png" : "");
  }
  const std::string out = a.out.empty() ? a.model : a.out;
  if (!ck.meta.extra.is_object()) ck.meta.extra = json::object();
  ck.meta.extra["calibration"] = {{"temperature", T}, {"threshold", thr}, {"target_coverage", a.coverage},
                                  {"fitted_on", "validation"}, {"windows", val.N}, {"data", a.data}};
  nn::save_checkpoint(out, m, ck.meta);
  std::printf("wrote %s (metadata extra.calibration)\n", out.c_str());
  return 0;
}

struct OpensetArgs {
  std::string model, data, unknown, out;
  double coverage = 0.95;
  int k = 10;
};

int run_openset(const OpensetArgs& a) {
  auto ck = nn::load_checkpoint(a.model);
  nn::Model& m = *ck.model;
  const int64_t C = m.C();
  const auto mean = norm_vec(ck.meta, "mean"), sd = norm_vec(ck.meta, "std");
  const auto known_ds = data::load_dataset(a.data), unknown_ds = data::load_dataset(a.unknown);
  const auto& classes = ck.meta.class_names.empty() ? known_ds.class_names : ck.meta.class_names;
  double T = 1.0;
  if (ck.meta.extra.is_object() && ck.meta.extra.contains("calibration"))
    T = ck.meta.extra["calibration"].value("temperature", 1.0);
  // the reference bank: training windows of the known dataset
  auto train = train::model_outputs(m, known_ds, data::kTrain, mean, sd, true);
  const auto kmap = to_model_classes(known_ds, classes);
  for (auto& y : train.labels) y = kmap[y];
  train::FeatureScorer scorer(train.features, train.labels, train.D, C, a.k);
  // knowns: the known dataset's test windows; unknowns: the unknown dataset's test windows of
  // classes the model lacks
  auto kn = train::model_outputs(m, known_ds, data::kTest, mean, sd, true);
  auto all_u = train::model_outputs(m, unknown_ds, data::kTest, mean, sd, true);
  const auto umap = to_model_classes(unknown_ds, classes);
  train::Outputs un;
  un.C = C, un.D = all_u.D;
  std::map<std::string, int64_t> per_class;
  for (int64_t i = 0; i < all_u.N; ++i) {
    if (umap[all_u.labels[i]] >= 0) continue;
    per_class[unknown_ds.class_names[all_u.labels[i]]]++;
    un.logits.insert(un.logits.end(), all_u.logits.begin() + i * C, all_u.logits.begin() + (i + 1) * C);
    un.features.insert(un.features.end(), all_u.features.begin() + i * un.D, all_u.features.begin() + (i + 1) * un.D);
    ++un.N;
  }
  if (un.N == 0) fail(a.unknown + ": its test split has no window of a class the model does not know");
  auto scores = [&](const train::Outputs& o) {
    std::map<std::string, std::vector<float>> s;
    const auto p = train::softmax_t(o.logits.data(), o.N, C, T);
    for (int64_t i = 0; i < o.N; ++i) {
      const float* z = o.logits.data() + i * C;
      const float mx = *std::max_element(z, z + C);
      double e = 0;
      for (int64_t c = 0; c < C; ++c) e += std::exp((z[c] - mx) / T);
      s["max softmax"].push_back(1.0f - *std::max_element(p.begin() + i * C, p.begin() + (i + 1) * C));
      s["energy"].push_back(static_cast<float>(-(mx + T * std::log(e))));  // -T logsumexp(z / T)
    }
    s["kNN distance (k=" + std::to_string(a.k) + ")"] = scorer.knn(o.features);
    s["Mahalanobis"] = scorer.mahalanobis(o.features);
    return s;
  };
  const auto sk = scores(kn), su = scores(un);
  json j = {{"model", a.model}, {"known", a.data}, {"unknown", a.unknown}, {"known_windows", kn.N},
            {"unknown_windows", un.N}, {"unknown_classes", per_class}, {"temperature", T}, {"coverage", a.coverage}};
  std::printf("%lld known test windows, %lld unknown (", (long long)kn.N, (long long)un.N);
  bool first = true;
  for (auto& [c, n] : per_class) std::printf("%s%s %lld", first ? "" : ", ", c.c_str(), (long long)n), first = false;
  std::printf(")\n%-24s %8s %22s\n", "score", "AUROC", "unknowns caught at 95%");
  std::string md = "| score | AUROC | unknowns caught at " + std::to_string(int(a.coverage * 100)) + " % known coverage |\n|---|---:|---:|\n";
  for (const auto& [name, known] : sk) {
    const double au = train::auroc(known, su.at(name)), det = train::detection_at_coverage(known, su.at(name), a.coverage);
    std::printf("%-24s %8.4f %22.4f\n", name.c_str(), au, det);
    j["scores"][name] = {{"auroc", au}, {"detection_at_coverage", det}};
    char row[256];
    std::snprintf(row, sizeof row, "| %s | %.4f | %.4f |\n", name.c_str(), au, det);
    md += row;
  }
  if (!a.out.empty()) {
    fs::create_directories(a.out);
    std::ofstream(a.out + "/openset.json") << j.dump(2) << "\n";
    std::ofstream(a.out + "/openset.md") << md;
    std::printf("wrote %s/openset.json and openset.md\n", a.out.c_str());
  }
  return 0;
}

}  // namespace

Runner add_calibrate_command(CLI::App& app) {
  auto a = std::make_shared<CalibrateArgs>();
  auto* c = app.add_subcommand("calibrate",
                               "fit a temperature and an \"unknown\" threshold on the validation split into the checkpoint");
  c->add_option("--model", a->model, "checkpoint (.safetensors)")->required();
  c->add_option("--data", a->data, "dataset file from `harvit prepare` (its validation split is used)")->required();
  c->add_option("--coverage", a->coverage, "share of validation windows the threshold keeps")
      ->check(CLI::Range(0.01, 1.0))
      ->capture_default_str();
  c->add_option("--bins", a->bins, "reliability bins")->check(CLI::Range(2, 100))->capture_default_str();
  c->add_option("--out", a->out, "checkpoint to write (default: the model, in place, atomically)");
  c->add_option("--report", a->report, "folder for calibration.json and the reliability / risk-coverage pictures");
  return [a] { return run_calibrate(*a); };
}

Runner add_openset_command(CLI::App& app) {
  auto a = std::make_shared<OpensetArgs>();
  auto* c = app.add_subcommand("openset", "how well scores tell windows of unseen activities from known ones (AUROC)");
  c->add_option("--model", a->model, "checkpoint (.safetensors)")->required();
  c->add_option("--data", a->data, "dataset of the model's classes (train split: feature bank; test split: knowns)")->required();
  c->add_option("--unknown", a->unknown, "dataset whose test-split windows of classes the model lacks are the unknowns")->required();
  c->add_option("--coverage", a->coverage, "known coverage for the detection rate")->check(CLI::Range(0.01, 1.0))->capture_default_str();
  c->add_option("--k", a->k, "neighbours for the kNN distance")->check(CLI::Range(1, 1000))->capture_default_str();
  c->add_option("--out", a->out, "folder for openset.json and openset.md");
  return [a] { return run_openset(*a); };
}

}  // namespace harvit::cli
