#include "train/explain.h"

#include "train/report.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "core/tensor.h"
#include "nn/checkpoint.h"
#include "train/trainer.h"

namespace harvit::train {

using json = nlohmann::json;
namespace fs = std::filesystem;

// ---- maps -----------------------------------------------------------------------------------------

Span token_span(const nn::VitConfig& c, int64_t l, int64_t j) {
  if (l < 0 || l > c.L) fail("token_span: block " + std::to_string(l) + " outside 0.." + std::to_string(c.L));
  if (j < 0 || j >= c.tokens(l))
    fail("token_span: token " + std::to_string(j) + " outside 0.." + std::to_string(c.tokens(l) - 1) + " of block " +
         std::to_string(l));
  const int64_t per = int64_t{1} << l;  // patches per token
  const int64_t p0 = j * per, p1 = std::min((j + 1) * per, c.N());
  return {p0 * c.P, p1 * c.P};
}

std::vector<double> head_average(const nn::VitConfig& c, const float* att, int64_t l, int64_t g) {
  const int64_t n = c.tokens(l), nn2 = n * n;
  std::vector<double> a(nn2, 0.0);
  const float* base = att + g * c.H * nn2;
  for (int64_t h = 0; h < c.H; ++h)
    for (int64_t i = 0; i < nn2; ++i) a[i] += base[h * nn2 + i];
  for (double& v : a) v /= static_cast<double>(c.H);
  return a;
}

std::vector<double> rollout_matrix(const nn::VitConfig& c, const std::vector<std::vector<double>>& A) {
  if (static_cast<int64_t>(A.size()) != c.L) fail("rollout_matrix: expected one map per block");
  const int64_t N = c.N();
  std::vector<double> R(N * N, 0.0);  // rows: block l's input tokens; columns: patches
  for (int64_t p = 0; p < N; ++p) R[p * N + p] = 1.0;
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t n = c.tokens(l), n2 = c.tokens(l + 1);
    if (static_cast<int64_t>(A[l].size()) != n * n) fail("rollout_matrix: block " + std::to_string(l) + "'s map has the wrong size");
    // Rt = (0.5 A + 0.5 I) R
    std::vector<double> Rt(n * N, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      double* out = &Rt[i * N];
      for (int64_t k = 0; k < n; ++k) {
        const double w = 0.5 * A[l][i * n + k] + (i == k ? 0.5 : 0.0);
        if (w == 0.0) continue;
        const double* r = &R[k * N];
        for (int64_t p = 0; p < N; ++p) out[p] += w * r[p];
      }
    }
    // R = G Rt: a merged token averages its parents (one parent where the merge padded)
    R.assign(n2 * N, 0.0);
    for (int64_t j = 0; j < n2; ++j) {
      const int64_t a = 2 * j, b = 2 * j + 1;
      const double w = b < n ? 0.5 : 1.0;
      for (int64_t p = 0; p < N; ++p) R[j * N + p] = w * (Rt[a * N + p] + (b < n ? Rt[b * N + p] : 0.0));
    }
  }
  return R;
}

AttentionMaps attention_maps(const nn::Vit& vit, int64_t b) {
  const auto& c = vit.config();
  if (b < 0 || b >= vit.batch()) fail("attention_maps: window " + std::to_string(b) + " is not in the last forward");
  AttentionMaps out;
  const int64_t N = c.N(), nL = c.tokens(c.L);
  out.received.resize(c.L);
  out.rollout.assign(c.M * N, 0.0);
  for (int64_t m = 0; m < c.M; ++m) {
    const int64_t g = b * c.M + m;
    std::vector<std::vector<double>> A(c.L);
    for (int64_t l = 0; l < c.L; ++l) {
      const int64_t n = c.tokens(l);
      A[l] = head_average(c, vit.attention(l), l, g);
      auto& rec = out.received[l];
      rec.resize(c.M * n, 0.0);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) rec[m * n + j] += A[l][i * n + j] / static_cast<double>(n);
    }
    const auto R = rollout_matrix(c, A);
    for (int64_t j = 0; j < nL; ++j)
      for (int64_t p = 0; p < N; ++p) out.rollout[m * N + p] += R[j * N + p] / static_cast<double>(nL);
  }
  return out;
}

std::vector<double> to_time(const nn::VitConfig& c, int64_t l, const std::vector<double>& per_token) {
  const int64_t n = c.tokens(l);
  if (static_cast<int64_t>(per_token.size()) != c.M * n) fail("to_time: expected M x tokens(l) values");
  std::vector<double> out(c.M * c.T, std::numeric_limits<double>::quiet_NaN());
  for (int64_t m = 0; m < c.M; ++m)
    for (int64_t j = 0; j < n; ++j) {
      const Span s = token_span(c, l, j);
      for (int64_t t = s.begin; t < s.end; ++t) out[m * c.T + t] = per_token[m * n + j] * static_cast<double>(n);
    }
  return out;
}

// ---- pictures -------------------------------------------------------------------------------------

namespace {


// A string inside a gnuplot double-quoted string, shown literally (enhanced text off for '_').
std::string esc(const std::string& s) {
  std::string o;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') o.push_back('\\');
    o.push_back(ch);
  }
  return o;
}

std::string num(double v) {
  if (!std::isfinite(v)) return "NaN";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

struct Band {
  std::string title;
  std::vector<double> values;  // (M, T)
};

// The window's signals over time and, under them on the same time axis, one heat band per map
// (one row per axis).
void draw_window(const std::string& png, const std::string& title, const std::vector<float>& signal /*(T, M)*/,
                 const std::vector<std::string>& axes, const std::vector<Band>& bands, int64_t T, int64_t M,
                 const std::string& xlabel) {
  const std::string dat = png + ".dat";
  {
    std::ofstream d(dat);
    for (int64_t t = 0; t < T; ++t) {
      d << t;
      for (int64_t m = 0; m < M; ++m) d << ' ' << num(signal[t * M + m]);
      d << '\n';
    }
    for (const Band& b : bands) {  // gnuplot index k+1: (t, axis, value) scans, one per axis
      d << "\n\n";
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t t = 0; t < T; ++t) d << t << ' ' << m << ' ' << num(b.values[m * T + t]) << '\n';
        d << '\n';
      }
    }
  }
  // Layout in pixels, turned into screen fractions: title, signals, bands, the time axis.
  const int W = 1100, top = 56, sig_h = 210, band_h = 18 * static_cast<int>(M) + 14, gap = 34, bottom = 52;
  const int H = top + sig_h + static_cast<int>(bands.size()) * (gap + band_h) + bottom;
  auto sy = [&](int px_from_top) { return num(1.0 - static_cast<double>(px_from_top) / H); };
  std::ostringstream s;
  s << "set terminal pngcairo size " << W << "," << H << " font 'Sans,10' noenhanced\nset output '" << png << "'\n"
    << "set multiplot title \"" << esc(title) << "\" font 'Sans,12'\n"
    << "set lmargin at screen 0.09\nset rmargin at screen 0.86\nset xrange [-0.5:" << T - 0.5 << "]\n"
    << "set datafile missing 'NaN'\n";
  // signals
  s << "set tmargin at screen " << sy(top) << "\nset bmargin at screen " << sy(top + sig_h) << "\n"
    << "set format x ''\nset grid xtics\nset ylabel 'signal (data units)'\nset key outside right top\n"
    << "set title 'window' offset 0,-0.6\nplot ";
  for (int64_t m = 0; m < M; ++m)
    s << (m ? ", " : "") << "'" << dat << "' index 0 using 1:" << m + 2 << " with lines lw 1.5 title \""
      << esc(axes[m]) << "\"";
  s << "\nunset key\nunset grid\nunset ylabel\n";
  // bands: one colour scale for all of them, logarithmic and centred on 1 (uniform attention):
  // orange where a token gets more than an even share, blue where it gets less. The scale ends at
  // the 95th percentile of |log share| over every band's samples (at least 1.5x), so one nearly
  // ignored token cannot wash out the rest; the few samples beyond it saturate.
  std::vector<double> dev;
  for (const Band& b : bands)
    for (double v : b.values)
      if (std::isfinite(v) && v > 0) dev.push_back(std::fabs(std::log(v)));
  double r = 1.5;
  if (!dev.empty()) {
    const size_t q = std::min(dev.size() - 1, static_cast<size_t>(0.95 * static_cast<double>(dev.size())));
    std::nth_element(dev.begin(), dev.begin() + static_cast<std::ptrdiff_t>(q), dev.end());
    r = std::max(r, std::exp(dev[q]));
  }
  char tics[200];
  std::snprintf(tics, sizeof tics, "(\"<=%.2f\" %g, \"%.2f\" %g, \"1\" 1, \"%.2f\" %g, \">=%.2f\" %g)", 1 / r, 1 / r,
                1 / std::sqrt(r), 1 / std::sqrt(r), std::sqrt(r), std::sqrt(r), r, r);
  s << "set palette defined (0 '#2166ac', 0.25 '#92c5de', 0.5 '#f7f7f7', 0.75 '#fdb863', 1 '#b35806')\n"
    << "set logscale cb\nset cbrange [" << num(1 / r) << ":" << num(r) << "]\nset cbtics " << tics
    << " font ',8'\nset cblabel 'share of attention relative to uniform (1 = every token alike)' font ',9'\n"
    << "set yrange [" << M - 0.5 << ":-0.5]\nset ytics (";
  for (int64_t m = 0; m < M; ++m) s << (m ? ", " : "") << "\"" << esc(axes[m]) << "\" " << m;
  s << ")\n";
  const int bands_top = top + sig_h + gap, bands_bottom = H - bottom;
  s << "set colorbox user origin screen 0.875," << sy(bands_bottom) << " size screen 0.014,"
    << num(static_cast<double>(bands_bottom - bands_top) / H) << "\n";
  int y = top + sig_h;
  for (size_t k = 0; k < bands.size(); ++k) {
    y += gap;
    const bool last = k + 1 == bands.size();
    s << "set tmargin at screen " << sy(y) << "\nset bmargin at screen " << sy(y + band_h) << "\n"
      << (k ? "unset colorbox\n" : "") << "set title \"" << esc(bands[k].title) << "\" offset 0,-0.6\n";
    if (last) s << "set format x '%g'\nset xlabel \"" << esc(xlabel) << "\"\n";
    s << "plot '" << dat << "' index " << k + 1 << " using 1:2:3 with image\n";
    y += band_h;
  }
  s << "unset multiplot\n";
  run_gnuplot(s.str(), png);
  fs::remove(dat);
}

}  // namespace

// ---- harvit explain ---------------------------------------------------------------------------------

std::vector<ExplainedWindow> explain_checkpoint(const std::string& ckpt_path, const data::Dataset& ds,
                                                const ExplainOptions& opt) {
  auto ck = nn::load_checkpoint(ckpt_path);
  auto* vit = dynamic_cast<nn::Vit*>(ck.model.get());
  if (!vit)
    fail("explain needs a ViT: " + ckpt_path + " holds a " + ck.model->kind() +
         " model, which has no attention to show");
  const auto& c = vit->config();
  check_model_fits_data(ckpt_path, *vit, ck.meta, ds);
  const uint8_t split = opt.split == "test" ? data::kTest : opt.split == "val" ? data::kVal
                        : opt.split == "train" ? data::kTrain : 255;
  if (split == 255) fail("--split must be train, val or test, not '" + opt.split + "'");
  const auto idx = ds.indices(split);
  const int64_t S = static_cast<int64_t>(idx.size());
  if (S == 0) fail(ds.name + ": the " + opt.split + " split is empty");
  for (int64_t i : opt.indices)
    if (i < 0 || i >= S)
      fail("--index " + std::to_string(i) + " is outside the " + opt.split + " split, which has " + std::to_string(S) +
           " windows (indices 0.." + std::to_string(S - 1) + ")");
  if (opt.errors < 0 || opt.per_class < 0) fail("--errors and --per-class must not be negative");
  if (opt.indices.empty() && opt.errors == 0 && opt.per_class == 0)
    fail("nothing to explain: give --index, --errors or --per-class");

  // Choose the windows.
  std::vector<ExplainedWindow> wins;
  auto add = [&](const char* why, int64_t s) { wins.push_back({why, s, idx[s], 0, 0, 0.0f, ""}); };
  for (int64_t i : opt.indices) add("index", i);
  if (opt.errors > 0 || opt.per_class > 0) {
    const auto pr = predict_split(*vit, ds, split);
    const int64_t C = vit->C();
    auto conf = [&](int64_t s) { return pr.probs[s * C + pr.pred[s]]; };
    std::vector<int64_t> order(S);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return conf(a) > conf(b); });
    int64_t taken = 0;
    for (int64_t s : order)
      if (taken < opt.errors && pr.pred[s] != pr.truth[s]) add("error", s), ++taken;
    if (opt.errors > 0 && taken < opt.errors)
      std::fprintf(stderr, "explain: the %s split has only %lld misclassified windows\n", opt.split.c_str(),
                   static_cast<long long>(taken));
    // per class: the most confident correct windows, topped up (where a class has too few) with
    // its misclassified windows, those with the highest probability of the true class first
    std::vector<int64_t> by_truth(S);
    std::iota(by_truth.begin(), by_truth.end(), 0);
    std::stable_sort(by_truth.begin(), by_truth.end(), [&](int64_t a, int64_t b) {
      return pr.probs[a * C + pr.truth[a]] > pr.probs[b * C + pr.truth[b]];
    });
    for (int64_t k = 0; k < C && opt.per_class > 0; ++k) {
      int64_t got = 0;
      for (int64_t s : order)
        if (got < opt.per_class && pr.truth[s] == k && pr.pred[s] == k) add("class", s), ++got;
      if (got < opt.per_class)
        std::fprintf(stderr, "explain: class %s has %lld correctly classified windows in the %s split; adding "
                     "misclassified ones\n", ds.class_names[k].c_str(), static_cast<long long>(got), opt.split.c_str());
      for (int64_t s : by_truth)
        if (got < opt.per_class && pr.truth[s] == k && pr.pred[s] != k) add("class", s), ++got;
    }
  }

  // One forward over the chosen windows; the attention buffers then hold their maps.
  const int64_t B = static_cast<int64_t>(wins.size()), W = ds.T * ds.M, C = vit->C();
  std::vector<float> x(B * W);
  for (int64_t b = 0; b < B; ++b)
    std::copy(ds.x.begin() + wins[b].file_index * W, ds.x.begin() + (wins[b].file_index + 1) * W, x.begin() + b * W);
  const float* logits = vit->forward(x.data(), B);
  fs::create_directories(opt.out_dir);
  json out = json::array();
  const std::string xlabel = "time (samples; a patch is " + std::to_string(c.P) + " samples)";
  for (int64_t b = 0; b < B; ++b) {
    ExplainedWindow& e = wins[b];
    const float* lg = logits + b * C;
    const int64_t am = std::max_element(lg, lg + C) - lg;
    double z = 0;
    for (int64_t k = 0; k < C; ++k) z += std::exp(double(lg[k]) - lg[am]);
    e.pred = static_cast<int32_t>(am);
    e.prob = static_cast<float>(1.0 / z);
    e.truth = ds.y[e.file_index];
    const AttentionMaps maps = attention_maps(*vit, b);
    // de-normalised signals (the dataset stores z-scored windows)
    std::vector<float> sig(ds.x.begin() + e.file_index * W, ds.x.begin() + (e.file_index + 1) * W);
    const bool denorm = !ds.mean.empty();
    if (denorm)
      for (int64_t t = 0; t < ds.T; ++t)
        for (int64_t m = 0; m < ds.M; ++m) sig[t * ds.M + m] = sig[t * ds.M + m] * ds.std[m] + ds.mean[m];
    std::vector<Band> bands;
    for (int64_t l = 0; l < c.L; ++l)
      bands.push_back({"block " + std::to_string(l) + ": attention each token receives (" +
                           std::to_string(c.tokens(l)) + " tokens of " + std::to_string((int64_t{1} << l) * c.P) +
                           " samples; mean over heads and queries)",
                       to_time(c, l, maps.received[l])});
    bands.push_back({"attention rollout over the " + std::to_string(c.L) +
                         " blocks (Abnar & Zuidema 2020; merged tokens average their two parents)",
                     to_time(c, 0, maps.rollout)});
    char pbuf[32];
    std::snprintf(pbuf, sizeof pbuf, "%.3f", e.prob);
    const std::string& pn = ds.class_names[e.pred];
    const std::string& tn = ds.class_names[e.truth];
    const std::string title = opt.split + " window " + std::to_string(e.split_index) + " (subject " +
                              std::to_string(ds.subject[e.file_index]) + "): predicted " + pn + " (p = " + pbuf +
                              "), true " + tn + (e.pred == e.truth ? "" : "  - an error");
    char name[96];
    std::snprintf(name, sizeof name, "%s_%05lld_%s.png", opt.split.c_str(), static_cast<long long>(e.split_index),
                  e.why.c_str());
    e.png = (fs::path(opt.out_dir) / name).string();
    std::vector<std::string> axes = ds.axis_names;
    for (int64_t m = static_cast<int64_t>(axes.size()); m < ds.M; ++m) axes.push_back("axis " + std::to_string(m));
    draw_window(e.png, title, sig, axes, bands, ds.T, ds.M, xlabel);
    json j{{"why", e.why}, {"split", opt.split}, {"split_index", e.split_index}, {"file_index", e.file_index},
           {"subject", ds.subject[e.file_index]}, {"true", tn}, {"predicted", pn}, {"probability", e.prob},
           {"png", e.png}, {"signal_denormalised", denorm}};
    json rec = json::array();
    for (int64_t l = 0; l < c.L; ++l) rec.push_back(maps.received[l]);
    j["received"] = rec;  // [block][axis * tokens(l) + token]
    j["rollout"] = maps.rollout;  // [axis * N + patch]
    out.push_back(j);
  }
  json doc{{"model", ckpt_path}, {"data", ds.name}, {"config", c.to_json()}, {"axes", ds.axis_names},
           {"classes", ds.class_names}, {"windows", out}};
  write_file_atomic((fs::path(opt.out_dir) / "explain.json").string(), doc.dump(1));
  return wins;
}

}  // namespace harvit::train
