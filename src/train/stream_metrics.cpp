#include "train/stream_metrics.h"

#include <algorithm>
#include <cmath>

#include "core/tensor.h"

namespace harvit::train {

using json = nlohmann::json;

WardCounts& WardCounts::operator+=(const WardCounts& o) {
  seg_tp += o.seg_tp, seg_tn += o.seg_tn, seg_i += o.seg_i, seg_m += o.seg_m, seg_o += o.seg_o;
  seg_d += o.seg_d, seg_f += o.seg_f, seg_u += o.seg_u;
  fr_tp += o.fr_tp, fr_tn += o.fr_tn, fr_i += o.fr_i, fr_m += o.fr_m, fr_o += o.fr_o;
  fr_d += o.fr_d, fr_f += o.fr_f, fr_u += o.fr_u;
  positives += o.positives, negatives += o.negatives;
  events += o.events, ev_correct += o.ev_correct, ev_fragmented += o.ev_fragmented, ev_merged += o.ev_merged;
  ev_frag_merged += o.ev_frag_merged, ev_deleted += o.ev_deleted;
  returns += o.returns, ret_correct += o.ret_correct, ret_fragmenting += o.ret_fragmenting;
  ret_merging += o.ret_merging, ret_frag_merging += o.ret_frag_merging, ret_inserted += o.ret_inserted;
  return *this;
}

namespace {
struct Run {
  int64_t begin, end;  // [begin, end)
};
std::vector<Run> runs_of_ones(const std::vector<uint8_t>& x) {
  std::vector<Run> r;
  const int64_t n = static_cast<int64_t>(x.size());
  for (int64_t i = 0; i < n;) {
    if (!x[i]) {
      ++i;
      continue;
    }
    int64_t j = i;
    while (j < n && x[j]) ++j;
    r.push_back({i, j});
    i = j;
  }
  return r;
}
}  // namespace

WardCounts ward_binary(const std::vector<uint8_t>& g, const std::vector<uint8_t>& p) {
  if (g.size() != p.size()) fail("ward_binary: truth and prediction differ in length");
  WardCounts w;
  const int64_t n = static_cast<int64_t>(g.size());
  // segments: maximal runs of constant (g, p); kind 0 TN, 1 FP, 2 FN, 3 TP
  struct Seg {
    int64_t begin, end;
    int kind;
  };
  std::vector<Seg> segs;
  for (int64_t i = 0; i < n;) {
    int64_t j = i;
    while (j < n && g[j] == g[i] && p[j] == p[i]) ++j;
    segs.push_back({i, j, (g[i] ? 2 : 0) + (p[i] ? 1 : 0)});
    i = j;
  }
  for (int64_t i = 0; i < n; ++i) (g[i] ? w.positives : w.negatives) += 1;
  for (size_t s = 0; s < segs.size(); ++s) {
    const int64_t len = segs[s].end - segs[s].begin;
    const bool prev_tp = s > 0 && segs[s - 1].kind == 3;
    const bool next_tp = s + 1 < segs.size() && segs[s + 1].kind == 3;
    switch (segs[s].kind) {
      case 3: ++w.seg_tp, w.fr_tp += len; break;
      case 0: ++w.seg_tn, w.fr_tn += len; break;
      case 1:  // FP: its neighbours inside its return are TP segments, if any
        if (prev_tp && next_tp) ++w.seg_m, w.fr_m += len;
        else if (prev_tp || next_tp) ++w.seg_o, w.fr_o += len;
        else ++w.seg_i, w.fr_i += len;
        break;
      case 2:  // FN: likewise inside its event
        if (prev_tp && next_tp) ++w.seg_f, w.fr_f += len;
        else if (prev_tp || next_tp) ++w.seg_u, w.fr_u += len;
        else ++w.seg_d, w.fr_d += len;
        break;
    }
  }
  // events and returns, and which overlap which (both lists sorted and disjoint)
  const auto ev = runs_of_ones(g), rt = runs_of_ones(p);
  std::vector<std::vector<int64_t>> ev_rets(ev.size()), rt_evs(rt.size());
  for (size_t a = 0, b = 0; a < ev.size() && b < rt.size();) {
    if (std::max(ev[a].begin, rt[b].begin) < std::min(ev[a].end, rt[b].end)) {
      ev_rets[a].push_back(static_cast<int64_t>(b));
      rt_evs[b].push_back(static_cast<int64_t>(a));
    }
    if (ev[a].end < rt[b].end) ++a;
    else ++b;
  }
  w.events = static_cast<int64_t>(ev.size());
  w.returns = static_cast<int64_t>(rt.size());
  for (size_t a = 0; a < ev.size(); ++a) {
    const size_t k = ev_rets[a].size();
    bool merged = false;
    for (int64_t b : ev_rets[a]) merged |= rt_evs[b].size() >= 2;
    if (k == 0) ++w.ev_deleted;
    else if (k == 1) (merged ? w.ev_merged : w.ev_correct) += 1;
    else (merged ? w.ev_frag_merged : w.ev_fragmented) += 1;
  }
  for (size_t b = 0; b < rt.size(); ++b) {
    const size_t k = rt_evs[b].size();
    bool frag = false;
    for (int64_t a : rt_evs[b]) frag |= ev_rets[a].size() >= 2;
    if (k == 0) ++w.ret_inserted;
    else if (k == 1) (frag ? w.ret_fragmenting : w.ret_correct) += 1;
    else (frag ? w.ret_frag_merging : w.ret_merging) += 1;
  }
  return w;
}

StreamMetrics::StreamMetrics(int64_t classes, double rate) : C(classes), rate_hz(rate) {
  if (C < 1) fail("stream metrics need at least one class");
  if (!(rate_hz > 0)) fail("stream metrics need a positive sampling rate");
  confusion.assign(C * (C + 1), 0);
  transition_pred.assign(C + 1, 0);
  unlabelled_pred.assign(C + 1, 0);
  per_class.assign(C, WardCounts{});
}

void StreamMetrics::add(const std::vector<int32_t>& truth, const std::vector<int32_t>& pred) {
  if (truth.size() != pred.size())
    fail("stream metrics: " + std::to_string(truth.size()) + " true labels but " + std::to_string(pred.size()) +
         " predicted ones");
  const int64_t n = static_cast<int64_t>(truth.size());
  for (int32_t p : pred)
    if (p >= C) fail("stream metrics: predicted label " + std::to_string(p) + " is not one of the " + std::to_string(C) + " classes");
  ++recordings;
  samples += n;
  auto col = [&](int32_t p) { return p < 0 ? C : static_cast<int64_t>(p); };
  auto is_scored = [&](int32_t t) { return t >= 0 && t < C; };
  // 1. sample level
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = truth[i];
    if (is_scored(t)) ++scored, ++confusion[t * (C + 1) + col(pred[i])];
    else if (t >= C) ++transition, ++transition_pred[col(pred[i])];
    else ++unlabelled, ++unlabelled_pred[col(pred[i])];
  }
  // 2. true runs over the scored samples (skipping the others)
  struct TrueRun {
    int32_t cls;
    int64_t start, end;  // first and last scored sample
  };
  std::vector<TrueRun> runs;
  for (int64_t i = 0; i < n; ++i) {
    if (!is_scored(truth[i])) continue;
    if (runs.empty() || runs.back().cls != truth[i]) runs.push_back({truth[i], i, i});
    else runs.back().end = i;
  }
  // predicted switches
  std::vector<int64_t> switches;
  for (int64_t i = 1; i < n; ++i)
    if (pred[i - 1] >= 0 && pred[i] >= 0 && pred[i] != pred[i - 1]) switches.push_back(i);
  pred_switches += static_cast<int64_t>(switches.size());
  std::vector<uint8_t> matched(switches.size(), 0);
  for (size_t k = 1; k < runs.size(); ++k) {
    ++true_changes;
    const int32_t b = runs[k].cls;
    // matching: the first switch into b inside R(k) = [end(k-1)+1, end(k)]
    const int64_t r0 = runs[k - 1].end + 1, r1 = runs[k].end;
    auto it = std::lower_bound(switches.begin(), switches.end(), r0);
    for (; it != switches.end() && *it <= r1; ++it)
      if (pred[*it] == b) {
        matched[it - switches.begin()] = 1;
        ++matched_switches;
        break;
      }
    // delay from start(k) to the first sample in [start(k), start(k+1)) predicted b
    const int64_t s = runs[k].start, e = k + 1 < runs.size() ? runs[k + 1].start : n;
    int64_t i = s;
    while (i < e && pred[i] != b) ++i;
    if (i < e) delays.push_back(i - s);
    else ++never_caught_up;
  }
  for (size_t j = 0; j < switches.size(); ++j) {
    if (matched[j]) continue;
    const int32_t t = truth[switches[j]];
    if (is_scored(t)) ++false_at_scored;
    else if (t >= C) ++false_at_transition;
    else ++false_at_unlabelled;
  }
  // 3. Ward et al. on the compacted scored frames
  std::vector<int32_t> ct, cp;
  for (int64_t i = 0; i < n; ++i)
    if (is_scored(truth[i])) ct.push_back(truth[i]), cp.push_back(pred[i]);
  const int64_t m = static_cast<int64_t>(ct.size());
  std::vector<uint8_t> g(m), p(m);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t i = 0; i < m; ++i) g[i] = ct[i] == c, p[i] = cp[i] == c;
    const WardCounts w = ward_binary(g, p);
    per_class[c] += w;
    ward += w;
  }
  for (int64_t i = 0; i < m;) {  // substitutions: runs of constant (truth, pred), wrong, pred a class
    int64_t j = i;
    while (j < m && ct[j] == ct[i] && cp[j] == cp[i]) ++j;
    if (cp[i] >= 0 && cp[i] != ct[i]) ++sub_segments, sub_frames += j - i;
    i = j;
  }
}

double StreamMetrics::accuracy() const {
  int64_t ok = 0;
  for (int64_t c = 0; c < C; ++c) ok += confusion[c * (C + 1) + c];
  return scored ? double(ok) / scored : 0.0;
}
double StreamMetrics::recall(int64_t c) const {
  int64_t row = 0;
  for (int64_t j = 0; j <= C; ++j) row += confusion[c * (C + 1) + j];
  return row ? double(confusion[c * (C + 1) + c]) / row : 0.0;
}
double StreamMetrics::precision(int64_t c) const {
  int64_t column = 0;
  for (int64_t i = 0; i < C; ++i) column += confusion[i * (C + 1) + c];
  return column ? double(confusion[c * (C + 1) + c]) / column : 0.0;
}
double StreamMetrics::f1(int64_t c) const {
  const double p = precision(c), r = recall(c);
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}
double StreamMetrics::f1_macro() const {
  double s = 0;
  for (int64_t c = 0; c < C; ++c) s += f1(c);
  return s / C;
}
double StreamMetrics::switches_per_min() const { return samples ? pred_switches / minutes() : 0.0; }
double StreamMetrics::true_changes_per_min() const { return samples ? true_changes / minutes() : 0.0; }
double StreamMetrics::false_switches_per_min() const { return samples ? false_switches() / minutes() : 0.0; }

double StreamMetrics::delay_s(double p) const {
  if (delays.empty()) return -1.0;
  std::vector<int64_t> d = delays;
  std::sort(d.begin(), d.end());
  const int64_t n = static_cast<int64_t>(d.size());
  int64_t k = static_cast<int64_t>(std::ceil(p * n - 1e-9)) - 1;
  k = std::clamp<int64_t>(k, 0, n - 1);
  return d[k] / rate_hz;
}

static json ward_json(const WardCounts& w) {
  auto rate = [](int64_t a, int64_t b) { return b ? double(a) / b : 0.0; };
  return {{"positive_frames", w.positives},
          {"negative_frames", w.negatives},
          {"segments", {{"TP", w.seg_tp}, {"TN", w.seg_tn}, {"insertion", w.seg_i}, {"merge", w.seg_m},
                        {"overfill", w.seg_o}, {"deletion", w.seg_d}, {"fragmentation", w.seg_f}, {"underfill", w.seg_u}}},
          {"frames", {{"TP", w.fr_tp}, {"TN", w.fr_tn}, {"insertion", w.fr_i}, {"merge", w.fr_m},
                      {"overfill", w.fr_o}, {"deletion", w.fr_d}, {"fragmentation", w.fr_f}, {"underfill", w.fr_u}}},
          {"frame_rates", {{"TP_of_P", rate(w.fr_tp, w.positives)}, {"deletion_of_P", rate(w.fr_d, w.positives)},
                           {"fragmentation_of_P", rate(w.fr_f, w.positives)}, {"underfill_of_P", rate(w.fr_u, w.positives)},
                           {"TN_of_N", rate(w.fr_tn, w.negatives)}, {"insertion_of_N", rate(w.fr_i, w.negatives)},
                           {"merge_of_N", rate(w.fr_m, w.negatives)}, {"overfill_of_N", rate(w.fr_o, w.negatives)}}},
          {"events", {{"total", w.events}, {"correct", w.ev_correct}, {"fragmented", w.ev_fragmented},
                      {"merged", w.ev_merged}, {"fragmented_and_merged", w.ev_frag_merged}, {"deleted", w.ev_deleted}}},
          {"returns", {{"total", w.returns}, {"correct", w.ret_correct}, {"fragmenting", w.ret_fragmenting},
                       {"merging", w.ret_merging}, {"fragmenting_and_merging", w.ret_frag_merging},
                       {"inserted", w.ret_inserted}}}};
}

json StreamMetrics::to_json(const std::vector<std::string>& names) const {
  if (static_cast<int64_t>(names.size()) < C) fail("stream metrics: fewer class names than classes");
  json pc = json::array();
  for (int64_t c = 0; c < C; ++c)
    pc.push_back({{"class", names[c]}, {"precision", precision(c)}, {"recall", recall(c)}, {"f1", f1(c)},
                  {"ward", ward_json(per_class[c])}});
  std::vector<std::vector<int64_t>> conf(C);
  for (int64_t i = 0; i < C; ++i) conf[i].assign(confusion.begin() + i * (C + 1), confusion.begin() + (i + 1) * (C + 1));
  return {{"recordings", recordings},
          {"samples", samples},
          {"minutes", minutes()},
          {"scored_samples", scored},
          {"transition_samples", transition},
          {"unlabelled_samples", unlabelled},
          {"accuracy", accuracy()},
          {"f1_macro", f1_macro()},
          {"per_class", pc},
          {"confusion_columns", "predicted class 0..C-1, then none"},
          {"confusion", conf},
          {"predicted_at_transition", transition_pred},
          {"predicted_at_unlabelled", unlabelled_pred},
          {"switches", {{"predicted", pred_switches}, {"true_changes", true_changes}, {"matched", matched_switches},
                        {"false", false_switches()}, {"false_at_scored", false_at_scored},
                        {"false_at_transition", false_at_transition}, {"false_at_unlabelled", false_at_unlabelled},
                        {"predicted_per_min", switches_per_min()}, {"true_per_min", true_changes_per_min()},
                        {"false_per_min", false_switches_per_min()},
                        {"false_at_scored_per_min", samples ? false_at_scored / minutes() : 0.0}}},
          {"delay", {{"changes", true_changes}, {"caught_up", static_cast<int64_t>(delays.size())},
                     {"never_caught_up", never_caught_up}, {"median_s", delay_s(0.5)}, {"p90_s", delay_s(0.9)}}},
          {"ward", ward_json(ward)},
          {"substitution", {{"segments", sub_segments}, {"frames", sub_frames}}}};
}

}  // namespace harvit::train
