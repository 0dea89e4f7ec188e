#include "train/report.h"

#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/gemm.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "nn/checkpoint.h"
#include "train/trainer.h"

namespace harvit::train {

using json = nlohmann::json;
namespace fs = std::filesystem;

Latency measure_latency(nn::Model& model, const data::Dataset& ds, int64_t n, int64_t batch) {
  Latency L;
  L.threads = num_threads();
  L.windows = n;
  L.batch = batch;
  const int64_t W = ds.T * ds.M;
  if (ds.size() == 0) fail("no windows to time");
  std::vector<double> ms;
  ms.reserve(n);
  for (int64_t i = 0; i < 20; ++i) model.forward(ds.x.data() + (i % ds.size()) * W, 1);  // warm-up
  for (int64_t i = 0; i < n; ++i) {
    const float* x = ds.x.data() + (i % ds.size()) * W;
    auto t0 = std::chrono::steady_clock::now();
    model.forward(x, 1);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  L.b1_median_ms = ms[ms.size() / 2];
  L.b1_p99_ms = ms[std::min<size_t>(ms.size() - 1, static_cast<size_t>(0.99 * ms.size()))];
  std::vector<float> xb(batch * W);
  for (int64_t b = 0; b < batch; ++b)
    std::copy(ds.x.begin() + (b % ds.size()) * W, ds.x.begin() + (b % ds.size() + 1) * W, xb.begin() + b * W);
  model.forward(xb.data(), batch);
  int reps = 0;
  auto t0 = std::chrono::steady_clock::now();
  double el = 0;
  while (reps < 3 || el < 1.0) {
    model.forward(xb.data(), batch);
    ++reps;
    el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  L.batch_windows_per_s = reps * batch / el;
  return L;
}

static std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

void check_model_fits_data(const std::string& ckpt_path, const nn::Model& model, const nn::CheckpointMeta& meta,
                           const data::Dataset& ds) {
  if (model.T() != ds.T || model.M() != ds.M)
    fail(ckpt_path + ": model expects windows of " + std::to_string(model.T()) + " x " + std::to_string(model.M()) +
         ", the data has " + std::to_string(ds.T) + " x " + std::to_string(ds.M));
  if (!meta.class_names.empty() && meta.class_names != ds.class_names)
    fail(ckpt_path + ": the model's classes differ from the data's");
  if (!meta.normalization.is_null() && meta.normalization.contains("mean") &&
      meta.normalization["mean"].get<std::vector<float>>() != ds.mean)
    fail(ckpt_path + ": the model was trained with other normalisation statistics than this data file's");
}

EvalResult evaluate_checkpoint(const std::string& ckpt_path, const data::Dataset& ds, const EvalOptions& opt) {
  auto ck = nn::load_checkpoint(ckpt_path);
  std::unique_ptr<nn::Model> converted;
  if (opt.convert) converted = opt.convert(*ck.model);
  nn::Model& model = converted ? *converted : *ck.model;
  check_model_fits_data(ckpt_path, model, ck.meta, ds);
  uint8_t split = opt.split == "test" ? data::kTest : opt.split == "val" ? data::kVal : opt.split == "train" ? data::kTrain : 255;
  if (split == 255) fail("--split must be train, val or test");
  if (ds.count(split) == 0) fail(ds.name + ": the " + opt.split + " split is empty");
  EvalResult r;
  auto pt = predict_split(model, ds, split);
  const int64_t C = model.C();
  r.test = compute_metrics(pt.truth, pt.pred, C);
  if (split == data::kVal) {
    r.val = r.test;
  } else {
    auto pv = predict_split(model, ds, data::kVal);
    r.val = compute_metrics(pv.truth, pv.pred, C);
  }
  json reduced;  // reduced precision: the fp32 model on the same split, and agreement
  if (converted) {
    auto pf = predict_split(*ck.model, ds, split);
    const Metrics mf = compute_metrics(pf.truth, pf.pred, C);
    int64_t same = 0;
    for (size_t i = 0; i < pf.pred.size(); ++i) same += pf.pred[i] == pt.pred[i];
    reduced = {{"fp32_accuracy", mf.accuracy}, {"fp32_f1_macro", mf.f1_macro},
               {"agreement_with_fp32", pf.pred.empty() ? 1.0 : double(same) / pf.pred.size()}};
  }
  // Calibration: the temperature is fitted on the validation split only, then the evaluated
  // split's ECE is reported with T = 1 and with it (train/calibration.h).
  json calib;
  {
    const auto ev = model_outputs(model, ds, split, {}, {}, false);
    auto p1 = softmax_t(ev.logits.data(), ev.N, C, 1.0);
    r.cal_before = calibration(p1.data(), ev.labels.data(), ev.N, C);
    r.cal_after = r.cal_before;
    if (ds.count(data::kVal) > 0) {
      const auto va = model_outputs(model, ds, data::kVal, {}, {}, false);
      r.temperature = fit_temperature(va.logits.data(), va.labels.data(), va.N, C);
      r.calibrated = true;
      p1 = softmax_t(ev.logits.data(), ev.N, C, r.temperature);
      r.cal_after = calibration(p1.data(), ev.labels.data(), ev.N, C);
    }
    std::vector<float> conf(ev.N);
    std::vector<uint8_t> ok(ev.N);
    for (int64_t i = 0; i < ev.N; ++i) {
      const float* p = p1.data() + i * C;
      const int64_t k = std::max_element(p, p + C) - p;
      conf[i] = p[k];
      ok[i] = k == ev.labels[i];
    }
    r.risk = risk_coverage(conf, ok);
    calib = {{"temperature_fitted_on_val", r.calibrated ? json(r.temperature) : json()},
             {"before", r.cal_before.to_json()}, {"after", r.cal_after.to_json()}, {"aurc", r.risk.aurc}};
  }
  const auto summary = model.summary();
  int64_t params = 0, macs_lin = 0, macs_att = 0;
  for (auto& s : summary) params += s.params, macs_lin += s.macs_linear, macs_att += s.macs_attention;
  json lat;
  Latency L;
  if (opt.latency) {
    L = measure_latency(model, ds, opt.latency_windows);
    lat = {{"threads", L.threads}, {"windows", L.windows}, {"batch1_median_ms", L.b1_median_ms},
           {"batch1_p99_ms", L.b1_p99_ms}, {"batch", L.batch}, {"batch_windows_per_s", L.batch_windows_per_s}};
  }
  r.table = {{"model", ckpt_path}, {"config", model.config_json()}, {"data", ds.name}, {"split", opt.split},
             {"params", params}, {"macs_linear", macs_lin}, {"macs_attention", macs_att},
             {"latency", lat}, {"val_accuracy", r.val.accuracy}, {"test", r.test.to_json(ds.class_names)},
             {"val", r.val.to_json(ds.class_names)}, {"split_info", ds.info.value("split", json())},
             {"checkpoint_epoch", ck.meta.extra.value("epoch", -1)}, {"precision", opt.precision}};
  if (!reduced.is_null()) r.table["reduced_precision"] = reduced;
  r.table["calibration"] = calib;
  std::ostringstream os;
  auto row = [&](const std::string& k, const std::string& v) {
    char b[256];
    std::snprintf(b, sizeof b, "| %-34s | %-28s |\n", k.c_str(), v.c_str());
    os << b;
  };
  const std::string sp = opt.split;
  os << "| Metric                             | Value                        |\n"
     << "|------------------------------------|------------------------------|\n";
  std::string pstr = std::to_string(params);
  for (int i = static_cast<int>(pstr.size()) - 3; i > 0; i -= 3) pstr.insert(i, ",");
  row("Parameters", pstr);
  row("FLOPs (conv+linear multiply-adds)", fmt("%.2f M", macs_lin / 1e6));
  row("Multiply-adds incl. attention", fmt("%.2f M", (macs_lin + macs_att) / 1e6));
  if (opt.latency) {
    row("Inference time, batch 1 (median)", fmt("%.3f ms", L.b1_median_ms) + " (" + std::to_string(L.threads) + " threads)");
    row("Inference time, batch 1 (p99)", fmt("%.3f ms", L.b1_p99_ms));
    row("Throughput, batch 256", fmt("%.0f windows/s", L.batch_windows_per_s));
  }
  row("Precision of the arithmetic", opt.precision);
  row("Val accuracy", fmt("%.4f", r.val.accuracy));
  row(sp == "test" ? "Test accuracy" : sp + " accuracy", fmt("%.4f", r.test.accuracy));
  if (!reduced.is_null()) {
    row("  same model in fp32", fmt("%.4f", reduced["fp32_accuracy"].get<double>()));
    row("  labels equal to fp32's", fmt("%.2f %%", 100 * reduced["agreement_with_fp32"].get<double>()));
  }
  row("Precision (weighted)", fmt("%.4f", r.test.precision_weighted));
  row("Recall (weighted)", fmt("%.4f", r.test.recall_weighted));
  row("F1-score (weighted)", fmt("%.4f", r.test.f1_weighted));
  row("Precision / Recall / F1 (macro)", fmt("%.4f", r.test.precision_macro) + " / " + fmt("%.4f", r.test.recall_macro) +
                                             " / " + fmt("%.4f", r.test.f1_macro));
  row("ECE (15 bins), T = 1", fmt("%.4f", r.cal_before.ece));
  if (r.calibrated)
    row("ECE, T fitted on val", fmt("%.4f", r.cal_after.ece) + fmt(" (T = %.3f)", r.temperature));
  row("AURC (risk-coverage area)", fmt("%.4f", r.risk.aurc));
  os << "\nPer-class accuracy (" << sp << " split; the recall of each class):\n\n"
     << "| Class                | Accuracy | Windows | Precision | F1     |\n"
     << "|----------------------|----------|---------|-----------|--------|\n";
  for (int64_t c = 0; c < C; ++c) {
    char b[200];
    std::snprintf(b, sizeof b, "| %-20s | %.4f   | %7lld | %.4f    | %.4f |\n", ds.class_names[c].c_str(),
                  r.test.class_accuracy(c), (long long)r.test.per_class[c].support, r.test.per_class[c].precision,
                  r.test.per_class[c].f1);
    os << b;
  }
  r.text = os.str();
  return r;
}

void run_gnuplot(const std::string& script, const std::string& png) {
  const std::string script_path = png + ".gp";
  std::ofstream(script_path) << script;
  const std::string cmd = "gnuplot '" + script_path + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) fail("cannot start gnuplot (install it: apt-get install gnuplot-nox)");
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int st = ::pclose(p);
  fs::remove(script_path);
  if (st != 0 || !fs::exists(png) || fs::file_size(png) == 0)
    fail("gnuplot failed to draw " + png + (WIFEXITED(st) && WEXITSTATUS(st) == 127 ? " (gnuplot is not installed: apt-get install gnuplot-nox)" : "") + ": " + out);
}
std::string gnuplot_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o.push_back('\\');
    if (c == '_') o += "\\\\";
    o.push_back(c);
  }
  return o;
}

namespace {
std::string esc(const std::string& s) { return gnuplot_escape(s); }
}  // namespace

void plot_confusion(const Metrics& m, const std::vector<std::string>& names, const std::string& png, const std::string& title) {
  const int64_t C = m.C;
  std::ostringstream d;
  for (int64_t i = 0; i < C; ++i) {
    int64_t row = 0;
    for (int64_t j = 0; j < C; ++j) row += m.confusion[i * C + j];
    for (int64_t j = 0; j < C; ++j) d << j << " " << i << " " << (row ? double(m.confusion[i * C + j]) / row : 0.0) << "\n";
    d << "\n";
  }
  const std::string dat = png + ".dat";
  std::ofstream(dat) << d.str();
  std::ostringstream s;
  const int size = std::max<int>(640, 90 * C + 260);
  s << "set terminal pngcairo size " << size << "," << size - 40 << " font 'Sans,10'\nset output '" << png << "'\n"
    << "set title \"" << esc(title) << "\"\nset xlabel 'Predicted'\nset ylabel 'True'\n"
    << "set xrange [-0.5:" << C - 0.5 << "]\nset yrange [" << C - 0.5 << ":-0.5]\nset cbrange [0:1]\n"
    << "set palette defined (0 '#ffffff', 1 '#08306b')\nset xtics rotate by -35\nset size ratio -1\n";
  s << "set xtics (";
  for (int64_t c = 0; c < C; ++c) s << (c ? ", " : "") << "\"" << esc(names[c]) << "\" " << c;
  s << ")\nset ytics (";
  for (int64_t c = 0; c < C; ++c) s << (c ? ", " : "") << "\"" << esc(names[c]) << "\" " << c;
  // Values in the cells: white on dark cells, black on light ones.
  s << ")\nunset key\n"
    << "plot '" << dat << "' using 1:2:3 with image, "
    << "'' using 1:2:($3>0.5?sprintf('%.2f',$3):'') with labels tc rgb 'white' font ',9', "
    << "'' using 1:2:($3<=0.5?sprintf('%.2f',$3):'') with labels tc rgb 'black' font ',9'\n";
  run_gnuplot(s.str(), png);
  fs::remove(dat);
}

void plot_curves(const json& history, const std::string& png) {
  if (!history.is_array() || history.empty()) fail("no training history to plot");
  const std::string dat = png + ".dat";
  {
    std::ofstream d(dat);
    for (auto& e : history)
      d << e.at("epoch").get<int>() << " " << e.at("train_loss").get<double>() << " " << e.at("val_loss").get<double>()
        << " " << e.at("train_acc").get<double>() << " " << e.at("val_acc").get<double>() << "\n";
  }
  std::ostringstream s;
  s << "set terminal pngcairo size 1200,450 font 'Sans,10'\nset output '" << png << "'\n"
    << "set multiplot layout 1,2\nset grid\nset xlabel 'epoch'\nset key top right\n"
    << "set title 'Loss'\nplot '" << dat << "' using 1:2 with linespoints pt 7 ps 0.4 title 'train', '' using 1:3 "
    << "with linespoints pt 7 ps 0.4 title 'validation'\n"
    << "set title 'Accuracy'\nset key bottom right\nplot '" << dat << "' using 1:4 with linespoints pt 7 ps 0.4 title "
    << "'train', '' using 1:5 with linespoints pt 7 ps 0.4 title 'validation'\nunset multiplot\n";
  run_gnuplot(s.str(), png);
  fs::remove(dat);
}

std::string write_report(const std::string& dir, const EvalResult& r, const json& history, const std::string& command) {
  fs::create_directories(dir);
  const auto names = [&] {
    std::vector<std::string> n;
    for (auto& c : r.table["test"]["per_class"]) n.push_back(c["class"]);
    return n;
  }();
  const std::string split = r.table["split"];
  plot_confusion(r.test, names, dir + "/confusion_matrix.png", "Normalised confusion matrix (" + split + " split)");
  const bool curves = history.is_array() && !history.empty();
  if (curves) plot_curves(history, dir + "/curves.png");
  plot_reliability(r.cal_before, r.cal_after, r.temperature, dir + "/reliability.png",
                   "Reliability (" + split + " split" + (r.calibrated ? "; T fitted on validation)" : ")"));
  plot_risk_coverage({{r.calibrated ? "max softmax, T fitted on validation" : "max softmax", r.risk}},
                     dir + "/risk_coverage.png", "Risk-coverage (" + split + " split)");
  write_file_atomic(dir + "/eval.json", r.table.dump(2));
  std::ostringstream md;
  md << "# harvit evaluation report\n\n"
     << "Model `" << r.table["model"].get<std::string>() << "` on `" << r.table["data"].get<std::string>() << "`, "
     << split << " split.\n\n## Result table\n\n" << r.text << "\n"
     << "FLOPs are counted as the seed counts them (thop: conv and linear multiply-adds); the attention matmuls add "
     << std::to_string(r.table["macs_attention"].get<int64_t>()) << " multiply-adds more per window.\n"
     << "Per-class accuracy is each class's recall. Weighted averages weight classes by their number of windows.\n\n"
     << "## Confusion matrix\n\n![confusion matrix](confusion_matrix.png)\n\n";
  if (curves) md << "## Training curves\n\n![loss and accuracy](curves.png)\n\n";
  md << "## Calibration\n\nExpected calibration error of the top probability (15 bins): " << fmt("%.4f", r.cal_before.ece)
     << " as trained";
  if (r.calibrated)
    md << ", " << fmt("%.4f", r.cal_after.ece) << " with temperature scaling (T = " << fmt("%.3f", r.temperature)
       << ", fitted on the validation split; `harvit calibrate` stores it with an \"unknown\" threshold)";
  md << ". Selective classification: answering only the most confident windows trades coverage for risk "
        "(area under the curve "
     << fmt("%.4f", r.risk.aurc) << ").\n\n![reliability](reliability.png)\n![risk-coverage](risk_coverage.png)\n\n";
  md << "## Split\n\n```json\n" << r.table["split_info"].dump(2) << "\n```\n\n"
     << "## Model config\n\n```json\n" << r.table["config"].dump(2) << "\n```\n\n"
     << "## Reproduce\n\n```sh\n" << command << "\n```\n\nAll figures: `eval.json`.\n";
  const std::string path = dir + "/report.md";
  write_file_atomic(path, md.str());
  return path;
}

}  // namespace harvit::train
