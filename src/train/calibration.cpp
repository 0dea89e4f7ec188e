#include "train/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include <fstream>
#include <sstream>

#include "core/gemm.h"
#include "core/tensor.h"
#include "train/report.h"

namespace harvit::train {

std::vector<float> softmax_t(const float* logits, int64_t N, int64_t C, double T) {
  std::vector<float> p(N * C);
  for (int64_t i = 0; i < N; ++i) {
    const float* z = logits + i * C;
    const double mx = *std::max_element(z, z + C);
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += std::exp((z[c] - mx) / T);
    for (int64_t c = 0; c < C; ++c) p[i * C + c] = static_cast<float>(std::exp((z[c] - mx) / T) / s);
  }
  return p;
}

double nll_t(const float* logits, const int32_t* labels, int64_t N, int64_t C, double T) {
  double total = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* z = logits + i * C;
    const double mx = *std::max_element(z, z + C) / T;
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += std::exp(z[c] / T - mx);
    total += mx + std::log(s) - z[labels[i]] / T;
  }
  return total / static_cast<double>(N);
}

double fit_temperature(const float* logits, const int32_t* labels, int64_t N, int64_t C) {
  if (N <= 0) fail("temperature scaling needs at least one labelled window");
  // golden-section search on u = log T
  double a = std::log(1.0 / 20), b = std::log(20.0);
  const double g = (std::sqrt(5.0) - 1) / 2;
  double x1 = b - g * (b - a), x2 = a + g * (b - a);
  double f1 = nll_t(logits, labels, N, C, std::exp(x1)), f2 = nll_t(logits, labels, N, C, std::exp(x2));
  for (int it = 0; it < 80 && b - a > 1e-6; ++it) {
    if (f1 < f2) {
      b = x2, x2 = x1, f2 = f1;
      x1 = b - g * (b - a);
      f1 = nll_t(logits, labels, N, C, std::exp(x1));
    } else {
      a = x1, x1 = x2, f1 = f2;
      x2 = a + g * (b - a);
      f2 = nll_t(logits, labels, N, C, std::exp(x2));
    }
  }
  return std::exp((a + b) / 2);
}

nlohmann::json Calibration::to_json() const {
  nlohmann::json b = nlohmann::json::array();
  for (const auto& x : bins)
    b.push_back({{"lo", x.lo}, {"hi", x.hi}, {"count", x.count}, {"confidence", x.confidence}, {"accuracy", x.accuracy}});
  return {{"ece", ece}, {"mce", mce}, {"nll", nll}, {"accuracy", accuracy}, {"bins", b}};
}

Calibration calibration(const float* probs, const int32_t* labels, int64_t N, int64_t C, int nbins) {
  if (N <= 0) fail("calibration needs at least one window");
  Calibration r;
  r.bins.resize(nbins);
  for (int b = 0; b < nbins; ++b) r.bins[b].lo = double(b) / nbins, r.bins[b].hi = double(b + 1) / nbins;
  int64_t correct = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* p = probs + i * C;
    const int64_t k = std::max_element(p, p + C) - p;
    const int b = std::min(nbins - 1, static_cast<int>(p[k] * nbins));
    auto& bin = r.bins[b];
    ++bin.count;
    bin.confidence += p[k];
    bin.accuracy += k == labels[i];
    correct += k == labels[i];
    r.nll -= std::log(std::max(1e-12, double(p[labels[i]])));
  }
  for (auto& bin : r.bins) {
    if (!bin.count) continue;
    bin.confidence /= bin.count;
    bin.accuracy /= bin.count;
    const double gap = std::fabs(bin.accuracy - bin.confidence);
    r.ece += gap * bin.count / N;
    r.mce = std::max(r.mce, gap);
  }
  r.nll /= N;
  r.accuracy = double(correct) / N;
  return r;
}

RiskCoverage risk_coverage(const std::vector<float>& conf, const std::vector<uint8_t>& correct) {
  if (conf.size() != correct.size() || conf.empty()) fail("risk_coverage: need as many correctness flags as confidences");
  std::vector<size_t> order(conf.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return conf[a] > conf[b]; });
  RiskCoverage rc;
  int64_t errors = 0;
  const double N = static_cast<double>(conf.size());
  for (size_t i = 0; i < order.size(); ++i) {
    errors += !correct[order[i]];
    rc.coverage.push_back((i + 1) / N);
    rc.risk.push_back(errors / double(i + 1));
    rc.threshold.push_back(conf[order[i]]);
    rc.aurc += rc.risk.back() / N;
  }
  return rc;
}

float threshold_for_coverage(std::vector<float> conf, double coverage) {
  if (conf.empty()) fail("threshold_for_coverage: no confidences");
  if (!(coverage > 0 && coverage <= 1)) fail("coverage must be in (0, 1]");
  std::sort(conf.begin(), conf.end(), std::greater<float>());
  const size_t keep = static_cast<size_t>(std::ceil(coverage * conf.size()));
  return conf[std::min(conf.size(), std::max<size_t>(keep, 1)) - 1];
}

double auroc(const std::vector<float>& known, const std::vector<float>& unknown) {
  if (known.empty() || unknown.empty()) fail("AUROC needs known and unknown windows");
  // rank-sum (Mann-Whitney U) with mid-ranks for ties
  std::vector<std::pair<float, int>> all;
  for (float s : known) all.push_back({s, 0});
  for (float s : unknown) all.push_back({s, 1});
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first < b.first; });
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double mid = (i + 1 + j) / 2.0;  // ranks are 1-based
    for (size_t t = i; t < j; ++t)
      if (all[t].second) rank_sum += mid;
    i = j;
  }
  const double nu = unknown.size(), nk = known.size();
  return (rank_sum - nu * (nu + 1) / 2) / (nu * nk);
}

double detection_at_coverage(const std::vector<float>& known, const std::vector<float>& unknown, double coverage) {
  if (known.empty() || unknown.empty()) fail("detection rate needs known and unknown windows");
  std::vector<float> k = known;
  std::sort(k.begin(), k.end());
  const size_t keep = static_cast<size_t>(std::ceil(coverage * k.size()));
  const float thr = k[std::min(k.size(), std::max<size_t>(keep, 1)) - 1];  // knows with score <= thr accepted
  int64_t flagged = 0;
  for (float s : unknown) flagged += s > thr;
  return double(flagged) / unknown.size();
}

Outputs model_outputs(nn::Model& model, const data::Dataset& ds, uint8_t split, const std::vector<float>& mean,
                      const std::vector<float>& std, bool features) {
  if (ds.T != model.T() || ds.M != model.M())
    fail("the model reads windows of " + std::to_string(model.T()) + " x " + std::to_string(model.M()) +
         ", the dataset has " + std::to_string(ds.T) + " x " + std::to_string(ds.M));
  const std::vector<int64_t> idx = split == 255 ? [&] {
    std::vector<int64_t> all(ds.size());
    std::iota(all.begin(), all.end(), 0);
    return all;
  }() : ds.indices(split);
  const bool remap = !mean.empty() && !ds.mean.empty() && (mean != ds.mean || std != ds.std);
  if (!mean.empty() && ds.mean.empty()) fail("the dataset is not normalised but the model expects normalised windows");
  Outputs o;
  o.N = static_cast<int64_t>(idx.size());
  o.C = model.C();
  o.D = features ? model.feature_dim() : 0;
  o.logits.resize(o.N * o.C);
  o.features.resize(o.N * o.D);
  o.labels.resize(o.N);
  const int64_t W = ds.T * ds.M, batch = 256;
  std::vector<float> x;
  for (int64_t b0 = 0; b0 < o.N; b0 += batch) {
    const int64_t B = std::min(batch, o.N - b0);
    x.resize(B * W);
    for (int64_t b = 0; b < B; ++b) {
      const float* src = ds.x.data() + idx[b0 + b] * W;
      float* dst = x.data() + b * W;
      for (int64_t i = 0; i < W; ++i) {
        const int64_t m = i % ds.M;
        dst[i] = remap ? (src[i] * ds.std[m] + ds.mean[m] - mean[m]) / std[m] : src[i];
      }
      o.labels[b0 + b] = ds.y[idx[b0 + b]];
    }
    const float* z = model.forward(x.data(), B);
    std::copy(z, z + B * o.C, o.logits.begin() + b0 * o.C);
    if (features) std::copy(model.features(), model.features() + B * o.D, o.features.begin() + b0 * o.D);
  }
  return o;
}

void plot_reliability(const Calibration& before, const Calibration& after, double temperature, const std::string& png,
                      const std::string& title) {
  const std::string dat = png + ".dat";
  {
    std::ofstream d(dat);
    for (size_t b = 0; b < before.bins.size(); ++b) {
      const auto &x = before.bins[b], &y = after.bins[b];
      d << (x.lo + x.hi) / 2 << " " << (x.count ? x.accuracy : -1) << " " << (y.count ? y.accuracy : -1) << " "
        << x.count << " " << y.count << "\n";
    }
  }
  std::ostringstream s;
  char t1[128], t2[128];
  std::snprintf(t1, sizeof t1, "T = 1 (ECE %.3f)", before.ece);
  std::snprintf(t2, sizeof t2, "T = %.2f (ECE %.3f)", temperature, after.ece);
  const double w = before.bins.empty() ? 0.05 : 1.0 / before.bins.size();
  s << "set terminal pngcairo size 640,560 font 'Sans,10'\nset output '" << png << "'\n"
    << "set title \"" << gnuplot_escape(title) << "\"\nset xlabel 'confidence (top probability)'\n"
    << "set ylabel 'accuracy'\nset xrange [0:1]\nset yrange [0:1]\nset grid\nset key top left\n"
    << "set style fill transparent solid 0.45 border\nset boxwidth " << w * 0.45 << "\n"
    << "plot '" << dat << "' using ($1-" << w * 0.22 << "):($2>=0?$2:1/0) with boxes lc rgb '#d62728' title '" << t1
    << "', '' using ($1+" << w * 0.22 << "):($3>=0?$3:1/0) with boxes lc rgb '#1f77b4' title '" << t2
    << "', x with lines lc rgb 'black' dt 2 title 'perfect calibration'\n";
  run_gnuplot(s.str(), png);
  std::remove(dat.c_str());
}

void plot_risk_coverage(const std::vector<std::pair<std::string, RiskCoverage>>& curves, const std::string& png,
                        const std::string& title) {
  std::ostringstream s;
  s << "set terminal pngcairo size 640,480 font 'Sans,10'\nset output '" << png << "'\n"
    << "set title \"" << gnuplot_escape(title) << "\"\nset xlabel 'coverage (share of windows answered)'\n"
    << "set ylabel 'risk (error rate among them)'\nset xrange [0:1]\nset yrange [0:*]\nset grid\nset key top left\nplot ";
  std::vector<std::string> files;
  for (size_t i = 0; i < curves.size(); ++i) {
    const std::string dat = png + "." + std::to_string(i) + ".dat";
    files.push_back(dat);
    std::ofstream d(dat);
    const auto& rc = curves[i].second;
    const size_t step = std::max<size_t>(1, rc.coverage.size() / 400);
    for (size_t j = 0; j < rc.coverage.size(); j += step) d << rc.coverage[j] << " " << rc.risk[j] << "\n";
    d << rc.coverage.back() << " " << rc.risk.back() << "\n";
    char t[160];
    std::snprintf(t, sizeof t, "%s (AURC %.4f)", curves[i].first.c_str(), rc.aurc);
    s << (i ? ", " : "") << "'" << dat << "' using 1:2 with lines lw 2 title \"" << gnuplot_escape(t) << "\"";
  }
  s << "\n";
  run_gnuplot(s.str(), png);
  for (auto& f : files) std::remove(f.c_str());
}

// ---- feature scores ---------------------------------------------------------------------------

namespace {
void l2_normalise(float* x, int64_t N, int64_t D) {
  for (int64_t i = 0; i < N; ++i) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += double(x[i * D + d]) * x[i * D + d];
    const float inv = static_cast<float>(1.0 / std::max(1e-12, std::sqrt(s)));
    for (int64_t d = 0; d < D; ++d) x[i * D + d] *= inv;
  }
}
}  // namespace

FeatureScorer::FeatureScorer(const std::vector<float>& f, const std::vector<int32_t>& y, int64_t D, int64_t C, int k)
    : D_(D), C_(C), N_(static_cast<int64_t>(y.size())), k_(k) {
  if (N_ == 0 || static_cast<int64_t>(f.size()) != N_ * D) fail("FeatureScorer: features and labels disagree in size");
  if (k_ < 1 || k_ > N_) fail("FeatureScorer: k must be between 1 and the training windows");
  bank_ = f;
  l2_normalise(bank_.data(), N_, D_);
  // class means and the shared covariance (double)
  means_.assign(C * D, 0.0);
  std::vector<int64_t> count(C, 0);
  for (int64_t i = 0; i < N_; ++i) {
    if (y[i] < 0 || y[i] >= C) fail("FeatureScorer: label out of range");
    ++count[y[i]];
    for (int64_t d = 0; d < D; ++d) means_[y[i] * D + d] += f[i * D + d];
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t d = 0; d < D; ++d) means_[c * D + d] /= std::max<int64_t>(1, count[c]);
  std::vector<float> centred(N_ * D);
  for (int64_t i = 0; i < N_; ++i)
    for (int64_t d = 0; d < D; ++d) centred[i * D + d] = static_cast<float>(f[i * D + d] - means_[y[i] * D + d]);
  std::vector<float> cov(D * D, 0.0f);
  gemm('T', 'N', D, D, N_, 1.0f / N_, centred.data(), D, centred.data(), D, 0.0f, cov.data(), D);
  // ridge, then the Cholesky factor L (cov = L L^T), kept in precision_ (lower triangle)
  double tr = 0;
  for (int64_t d = 0; d < D; ++d) tr += cov[d * D + d];
  const double ridge = 1e-3 * tr / D + 1e-9;
  precision_.assign(D * D, 0.0);
  for (int64_t i = 0; i < D; ++i)
    for (int64_t j = 0; j <= i; ++j) precision_[i * D + j] = cov[i * D + j] + (i == j ? ridge : 0.0);
  for (int64_t j = 0; j < D; ++j) {
    double s = precision_[j * D + j];
    for (int64_t p = 0; p < j; ++p) s -= precision_[j * D + p] * precision_[j * D + p];
    if (!(s > 0)) fail("FeatureScorer: covariance is not positive definite");
    const double ljj = std::sqrt(s);
    precision_[j * D + j] = ljj;
    for (int64_t i = j + 1; i < D; ++i) {
      double t = precision_[i * D + j];
      for (int64_t p = 0; p < j; ++p) t -= precision_[i * D + p] * precision_[j * D + p];
      precision_[i * D + j] = t / ljj;
    }
  }
  // whiten the means: m_c <- L^-1 m_c
  for (int64_t c = 0; c < C; ++c) {
    double* m = means_.data() + c * D;
    for (int64_t i = 0; i < D; ++i) {
      double t = m[i];
      for (int64_t p = 0; p < i; ++p) t -= precision_[i * D + p] * m[p];
      m[i] = t / precision_[i * D + i];
    }
  }
}

std::vector<float> FeatureScorer::knn(const std::vector<float>& features) const {
  const int64_t Q = static_cast<int64_t>(features.size()) / D_;
  std::vector<float> q = features, sim(Q * N_), out(Q);
  l2_normalise(q.data(), Q, D_);
  gemm('N', 'T', Q, N_, D_, 1.0f, q.data(), D_, bank_.data(), D_, 0.0f, sim.data(), N_);
  for (int64_t i = 0; i < Q; ++i) {
    float* s = sim.data() + i * N_;
    std::nth_element(s, s + (k_ - 1), s + N_, std::greater<float>());
    out[i] = std::sqrt(std::max(0.0f, 2.0f - 2.0f * s[k_ - 1]));  // distance to the k-th nearest
  }
  return out;
}

std::vector<float> FeatureScorer::mahalanobis(const std::vector<float>& features) const {
  const int64_t Q = static_cast<int64_t>(features.size()) / D_;
  std::vector<float> out(Q);
  std::vector<double> z(D_);
  for (int64_t n = 0; n < Q; ++n) {
    const float* x = features.data() + n * D_;
    for (int64_t i = 0; i < D_; ++i) {  // z = L^-1 x
      double t = x[i];
      const double* row = precision_.data() + i * D_;
      for (int64_t p = 0; p < i; ++p) t -= row[p] * z[p];
      z[i] = t / row[i];
    }
    double best = INFINITY;
    for (int64_t c = 0; c < C_; ++c) {
      double d2 = 0;
      for (int64_t i = 0; i < D_; ++i) d2 += (z[i] - means_[c * D_ + i]) * (z[i] - means_[c * D_ + i]);
      best = std::min(best, d2);
    }
    out[n] = static_cast<float>(std::sqrt(best));
  }
  return out;
}

}  // namespace harvit::train
