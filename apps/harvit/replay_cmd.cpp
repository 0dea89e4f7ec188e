// `harvit replay`: raw recordings (a HAPT RawData folder) replayed sample by sample through the
// streaming recogniser, scored against their per-sample labels (train/stream_metrics.h), with
// what the recogniser costs (deploy/replay.h). Writes replay.json, replay.md and timeline.png.
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#include "core/gemm.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "data/loaders.h"
#include "deploy/replay.h"
#include "deploy/stream.h"
#include "train/report.h"
#include "train/stream_metrics.h"

namespace harvit::cli {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ReplayArgs {
  std::string model, data, subjects, out, timeline;
  RecognizerArgs rec;
};

std::vector<int32_t> parse_subjects(const std::string& s) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty()) continue;
    size_t used = 0;
    int v = 0;
    try {
      v = std::stoi(tok, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != tok.size() || used == 0) fail("--subjects: '" + tok + "' is not a subject number");
    out.push_back(v);
  }
  return out;
}

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}



// True vs predicted label over time for one recording: the truth as wide bars (activity green,
// transition orange, unlabelled grey), the causal prediction as narrow bars just above (blue where
// it equals the truth, red where it is wrong at an activity sample, light blue at transition or
// unlabelled samples, which are not scored); rows: the classes, then "transition", then
// "unlabelled / none" (the prediction before the first decision).
void plot_timeline(const deploy::ReplayedRecording& r, const std::vector<std::string>& names, int64_t C,
                   double rate, const std::string& title, const std::string& png) {
  const int64_t n = static_cast<int64_t>(r.truth.size());
  const int64_t row_tr = C, row_none = C + 1;
  // blocks: 0 truth activity, 1 truth transition, 2 truth unlabelled, 3 pred right, 4 pred wrong,
  // 5 pred at unscored samples
  std::vector<std::ostringstream> blk(6);
  std::vector<int> count(6, 0);
  auto runs = [&](auto key, auto emit) {
    for (int64_t i = 0; i < n;) {
      int64_t j = i;
      while (j < n && key(j) == key(i)) ++j;
      emit(i, j);
      i = j;
    }
  };
  runs([&](int64_t i) { return r.truth[i]; },
       [&](int64_t i, int64_t j) {
         const int32_t t = r.truth[i];
         const int b = t >= 0 && t < C ? 0 : t >= C ? 1 : 2;
         const int64_t y = b == 0 ? t : b == 1 ? row_tr : row_none;
         blk[b] << i / rate << " " << y - 0.17 << " " << (j - i) / rate << " 0\n";
         ++count[b];
       });
  auto status = [&](int64_t i) {
    const int32_t t = r.truth[i];
    if (t < 0 || t >= C) return 5;
    return r.pred[i] == t ? 3 : 4;
  };
  runs([&](int64_t i) { return std::make_pair(r.pred[i], status(i)); },
       [&](int64_t i, int64_t j) {
         const int b = status(i);
         const int64_t y = r.pred[i] >= 0 ? r.pred[i] : row_none;
         blk[b] << i / rate << " " << y + 0.17 << " " << (j - i) / rate << " 0\n";
         ++count[b];
       });
  const std::string dat = png + ".dat";
  {
    std::ofstream d(dat);
    for (int b = 0; b < 6; ++b) d << blk[b].str() << (count[b] ? "" : "0 -100 0 0\n") << "\n\n";
  }
  std::ostringstream s;
  s << "set terminal pngcairo size 1600," << 160 + 45 * (C + 2) << " font 'Sans,10'\nset output '" << png << "'\n"
    << "set title \"" << train::gnuplot_escape(title) << "\"\nset xlabel 'time (s)'\n"
    << "set yrange [-0.6:" << C + 1.6 << "]\nset xrange [0:" << n / rate << "]\nset grid xtics\n"
    << "set key outside bottom center horizontal\nset ytics (";
  for (int64_t c = 0; c < C; ++c) s << "\"" << train::gnuplot_escape(names[c]) << "\" " << c << ", ";
  s << "\"transition\" " << row_tr << ", \"unlabelled / none\" " << row_none << ")\n";
  const char* style[6][2] = {{"#74c476", "true: activity"},
                             {"#fd8d3c", "true: postural transition"},
                             {"#bdbdbd", "true: unlabelled"},
                             {"#08519c", "predicted: right"},
                             {"#e31a1c", "predicted: wrong"},
                             {"#9ecae1", "predicted at transition / unlabelled"}};
  s << "plot ";
  for (int b = 0; b < 6; ++b)
    s << (b ? ", " : "") << "'" << dat << "' index " << b << " using 1:2:3:4 with vectors nohead lw "
      << (b < 3 ? 9 : 5) << " lc rgb '" << style[b][0] << "' title '" << style[b][1] << "'";
  s << "\n";
  train::run_gnuplot(s.str(), png);
  fs::remove(dat);
}

struct Scored {
  train::StreamMetrics causal, aligned;
};

std::string pct(double v) { return fmt("%.2f %%", 100 * v); }

// The table printed and put into replay.md.
std::string figure_table(const Scored& s, const deploy::ReplayResult& r) {
  std::ostringstream os;
  auto row = [&](const std::string& k, const std::string& a, const std::string& b) {
    char buf[320];
    std::snprintf(buf, sizeof buf, "| %-42s | %-22s | %-22s |\n", k.c_str(), a.c_str(), b.c_str());
    os << buf;
  };
  const auto& c = s.causal;
  const auto& a = s.aligned;
  row("Figure", "causal", "aligned (NOT causal)");
  os << "|--------------------------------------------|------------------------|------------------------|\n";
  row("Sample accuracy (activity samples)", fmt("%.4f", c.accuracy()), fmt("%.4f", a.accuracy()));
  row("Macro-F1 (activity samples)", fmt("%.4f", c.f1_macro()), fmt("%.4f", a.f1_macro()));
  row("Predicted switches / min (true changes)", fmt("%.2f", c.switches_per_min()) + " (" + fmt("%.2f", c.true_changes_per_min()) + ")",
      fmt("%.2f", a.switches_per_min()) + " (" + fmt("%.2f", a.true_changes_per_min()) + ")");
  row("False switches / min", fmt("%.2f", c.false_switches_per_min()), fmt("%.2f", a.false_switches_per_min()));
  auto fs3 = [](const train::StreamMetrics& m) {
    return std::to_string(m.false_at_scored) + " / " + std::to_string(m.false_at_transition) + " / " +
           std::to_string(m.false_at_unlabelled);
  };
  row("  false at activity / transition / unlab.", fs3(c), fs3(a));
  auto fa = [](const train::StreamMetrics& m) { return fmt("%.2f", m.samples ? m.false_at_scored / m.minutes() : 0.0); };
  row("False switches / min at activity samples", fa(c), fa(a));
  auto delay = [](const train::StreamMetrics& m) {
    return m.delays.empty() ? std::string("-") : fmt("%.2f", m.delay_s(0.5)) + " / " + fmt("%.2f", m.delay_s(0.9));
  };
  row("Delay to a true change, median / p90 (s)", delay(c), delay(a));
  row("  changes never caught up (of all)", std::to_string(c.never_caught_up) + " of " + std::to_string(c.true_changes),
      std::to_string(a.never_caught_up) + " of " + std::to_string(a.true_changes));
  auto ev = [](const train::StreamMetrics& m) {
    const auto& w = m.ward;
    return std::to_string(w.ev_correct) + "/" + std::to_string(w.ev_fragmented) + "/" + std::to_string(w.ev_merged) +
           "/" + std::to_string(w.ev_frag_merged) + "/" + std::to_string(w.ev_deleted) + " of " + std::to_string(w.events);
  };
  row("Events C/F/M/FM/D (Ward)", ev(c), ev(a));
  auto ins = [](const train::StreamMetrics& m) {
    return std::to_string(m.ward.ret_inserted) + " of " + std::to_string(m.ward.returns);
  };
  row("Inserted returns (Ward)", ins(c), ins(a));
  auto segs = [](const train::StreamMetrics& m) {
    const auto& w = m.ward;
    return std::to_string(w.seg_i) + "/" + std::to_string(w.seg_d) + "/" + std::to_string(w.seg_f) + "/" +
           std::to_string(w.seg_m) + "/" + std::to_string(w.seg_o) + "/" + std::to_string(w.seg_u) + "/" +
           std::to_string(m.sub_segments);
  };
  row("Segments I/D/F/M/O/U/S (Ward)", segs(c), segs(a));
  auto rates = [](const train::StreamMetrics& m) {
    const auto& w = m.ward;
    const double P = std::max<int64_t>(1, w.positives);
    return fmt("%.3f", w.fr_d / P) + "/" + fmt("%.3f", w.fr_f / P) + "/" + fmt("%.3f", w.fr_u / P);
  };
  row("Frame rates D/F/U of P (Ward)", rates(c), rates(a));
  auto rates_n = [](const train::StreamMetrics& m) {
    const auto& w = m.ward;
    const double N = std::max<int64_t>(1, w.negatives);
    return fmt("%.3f", w.fr_i / N) + "/" + fmt("%.3f", w.fr_m / N) + "/" + fmt("%.3f", w.fr_o / N);
  };
  row("Frame rates I/M/O of N (Ward)", rates_n(c), rates_n(a));
  row("Latency per hop p50 / p99 (ms, wall)", fmt("%.3f", r.latency_ms(0.5)) + " / " + fmt("%.3f", r.latency_ms(0.99)), "");
  row("  thread CPU time of that push p50 / p99", fmt("%.3f", r.latency_ms(0.5, true)) + " / " + fmt("%.3f", r.latency_ms(0.99, true)), "");
  row("Share of one core (classify / duration)", pct(r.core_share()),
      "push loop: " + pct(r.duration_s > 0 ? r.push_s / r.duration_s : 0.0));
  row("Decisions (hops) / recording time", std::to_string(r.decisions) + " / " + fmt("%.1f min", r.duration_s / 60), "");
  auto mb = [](int64_t kb) { return kb < 0 ? std::string("n/a") : fmt("%.1f MiB", kb / 1024.0); };
  row("VmRSS before / after recogniser / end", mb(r.before_recognizer.rss_kb) + " / " + mb(r.after_recognizer.rss_kb),
      mb(r.after_replay.rss_kb));
  row("VmHWM (peak) at the end", mb(r.after_replay.hwm_kb), "");
  return os.str();
}

int run(const ReplayArgs& a, CLI::App* cmd) {
  set_num_threads(a.rec.threads);
  const deploy::StreamOptions so = stream_options(a.rec);
  const auto subjects = parse_subjects(a.subjects);
  const data::RawData raw = data::load_hapt(a.data, /*transitions=*/true);
  const deploy::MemoryUse before = deploy::memory_use();
  deploy::StreamRecognizer rec(a.model, so);
  const int64_t C = rec.classes();
  const auto names = rec.class_names();
  for (int64_t c = 0; c < C && c < static_cast<int64_t>(raw.class_names.size()); ++c)
    if (names[c] != raw.class_names[c])
      fail(a.model + ": class " + std::to_string(c) + " is " + names[c] + ", the recordings' is " + raw.class_names[c]);
  std::fprintf(stderr, "replaying %s (%s, window %lld, hop %lld) on %s, subjects %s, one sample per push...\n",
               a.model.c_str(), a.rec.precision.c_str(), (long long)rec.window(), (long long)rec.hop(), a.data.c_str(),
               a.subjects.empty() ? "all" : a.subjects.c_str());
  const deploy::ReplayResult r = deploy::replay(rec, raw, subjects, before);

  Scored s{train::StreamMetrics(C, raw.rate_hz), train::StreamMetrics(C, raw.rate_hz)};
  json per_rec = json::array();
  size_t timeline_i = 0;
  bool timeline_found = a.timeline.empty();
  for (size_t i = 0; i < r.recordings.size(); ++i) {
    const auto& rr = r.recordings[i];
    s.causal.add(rr.truth, rr.pred);
    s.aligned.add(rr.truth, rr.pred_aligned);
    train::StreamMetrics one(C, raw.rate_hz);
    one.add(rr.truth, rr.pred);
    const std::string name = fs::path(rr.source).filename().string();
    per_rec.push_back({{"source", name}, {"subject", rr.subject}, {"samples", rr.truth.size()},
                       {"decisions", rr.decisions}, {"accuracy", one.accuracy()}, {"switches", one.pred_switches},
                       {"false_switches", one.false_switches()}, {"true_changes", one.true_changes}});
    if (!timeline_found && name.find(a.timeline) != std::string::npos) timeline_i = i, timeline_found = true;
  }
  if (!timeline_found) fail("--timeline " + a.timeline + ": no replayed recording's file name contains it");

  const std::string table = figure_table(s, r);
  std::string subj_str;
  for (int32_t v : subjects) subj_str += (subj_str.empty() ? "" : ",") + std::to_string(v);
  char head[512];
  std::snprintf(head, sizeof head,
                "%s, %s, %zu recordings (%.1f min) of subjects %s; window %lld, hop %lld (%.2f s), smooth %d (%s, "
                "votes %d), min-confidence %.2f, hysteresis %d, %d thread%s\n",
                a.model.c_str(), a.rec.precision.c_str(), r.recordings.size(), r.duration_s / 60,
                subj_str.empty() ? "all" : subj_str.c_str(), (long long)rec.window(), (long long)rec.hop(),
                rec.hop() / raw.rate_hz, rec.options().smooth, deploy::smoothing_name(rec.options().method),
                rec.options().votes, rec.options().min_confidence, rec.options().hysteresis, a.rec.threads,
                a.rec.threads == 1 ? "" : "s");
  std::printf("%s\n%s", head, table.c_str());

  const std::string out = a.out.empty() ? (fs::path(a.model).parent_path() / "replay").string() : a.out;
  fs::create_directories(out);
  const std::string command = command_line();
  json j = {{"command", command},
            {"model", a.model},
            {"data", a.data},
            {"subjects", subjects},
            {"options", {{"precision", a.rec.precision}, {"window", rec.window()}, {"hop", rec.hop()},
                         {"smooth", rec.options().smooth}, {"method", deploy::smoothing_name(rec.options().method)},
                         {"votes", rec.options().votes}, {"min_confidence", rec.options().min_confidence},
                         {"hysteresis", rec.options().hysteresis}, {"reject", a.rec.reject},
                         {"threads", a.rec.threads}}},
            {"rate_hz", raw.rate_hz},
            {"class_names", names},
            {"causal", s.causal.to_json(names)},
            {"aligned_not_causal", s.aligned.to_json(names)},
            {"cost", r.cost_json()},
            {"recordings", per_rec}};
  write_file_atomic(out + "/replay.json", j.dump(2));

  const auto& tl = r.recordings[timeline_i];
  train::StreamMetrics tl_m(C, raw.rate_hz);
  tl_m.add(tl.truth, tl.pred);
  const std::string tl_name = fs::path(tl.source).filename().string();
  const std::string title = tl_name + " (subject " + std::to_string(tl.subject) + "), " + a.rec.precision + ", smooth " +
                            std::to_string(rec.options().smooth) + " " + deploy::smoothing_name(rec.options().method) +
                            ", hysteresis " + std::to_string(rec.options().hysteresis) + ": causal accuracy " +
                            fmt("%.3f", tl_m.accuracy()) + ", " + std::to_string(tl_m.pred_switches) + " switches for " +
                            std::to_string(tl_m.true_changes) + " true changes";
  plot_timeline(tl, names, C, raw.rate_hz, title, out + "/timeline.png");

  std::ostringstream md;
  md << "# harvit replay\n\n" << head << "\nReplayed one sample per push through the streaming recogniser; "
     << "\"causal\" labels each sample with the last decision made at or before it, \"aligned\" moves every decision "
     << "back by window/2 + hop/2 samples (not causal, for comparison). Definitions: `src/train/stream_metrics.h`.\n\n"
     << table << "\n## Confusion matrix (causal, activity samples)\n\nRows true, columns predicted (counts).\n\n| true \\ predicted |";
  for (int64_t c = 0; c < C; ++c) md << " " << names[c] << " |";
  md << " none |\n|---|";
  for (int64_t c = 0; c <= C; ++c) md << "---:|";
  md << "\n";
  for (int64_t i = 0; i < C; ++i) {
    md << "| " << names[i] << " |";
    for (int64_t c = 0; c <= C; ++c) md << " " << s.causal.confusion[i * (C + 1) + c] << " |";
    md << "\n";
  }
  md << "\n## Predicted at samples the model has no class for (causal)\n\n| truth | samples |";
  for (int64_t c = 0; c < C; ++c) md << " " << names[c] << " |";
  md << " none |\n|---|---:|";
  for (int64_t c = 0; c <= C; ++c) md << "---:|";
  md << "\n| postural transition | " << s.causal.transition << " |";
  for (int64_t c = 0; c <= C; ++c) md << " " << s.causal.transition_pred[c] << " |";
  md << "\n| unlabelled | " << s.causal.unlabelled << " |";
  for (int64_t c = 0; c <= C; ++c) md << " " << s.causal.unlabelled_pred[c] << " |";
  md << "\n\n## Per class (causal)\n\n| class | precision | recall | F1 | events | C | F | M | FM | D |\n"
     << "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (int64_t c = 0; c < C; ++c) {
    const auto& w = s.causal.per_class[c];
    md << "| " << names[c] << " | " << fmt("%.4f", s.causal.precision(c)) << " | " << fmt("%.4f", s.causal.recall(c))
       << " | " << fmt("%.4f", s.causal.f1(c)) << " | " << w.events << " | " << w.ev_correct << " | " << w.ev_fragmented
       << " | " << w.ev_merged << " | " << w.ev_frag_merged << " | " << w.ev_deleted << " |\n";
  }
  md << "\n## Timeline\n\n![timeline](timeline.png)\n\n" << title << ".\n\n## Reproduce\n\n```sh\n" << command
     << "\n```\n\nAll figures: `replay.json`.\n";
  (void)cmd;
  write_file_atomic(out + "/replay.md", md.str());
  std::printf("\nwrote %s/replay.json, %s/replay.md, %s/timeline.png (%s)\n", out.c_str(), out.c_str(), out.c_str(),
              tl_name.c_str());
  return 0;
}

}  // namespace

Runner add_replay_command(CLI::App& app) {
  auto a = std::make_shared<ReplayArgs>();
  auto* cmd = app.add_subcommand(
      "replay", "replay raw HAPT recordings sample by sample through the streaming recogniser and score it per sample");
  cmd->add_option("--model", a->model, "checkpoint (.safetensors)")->required();
  cmd->add_option("--data", a->data, "HAPT folder (RawData, or the folder holding it)")->required();
  cmd->add_option("--subjects", a->subjects, "subjects to replay, e.g. 2,4,9 (default: all)");
  add_recognizer_options(cmd, a->rec);
  cmd->add_option("--out", a->out, "folder for replay.json, replay.md, timeline.png (default: <model folder>/replay)");
  cmd->add_option("--timeline", a->timeline, "recording to draw (part of its file name, e.g. exp05_user03; default: the first)");
  return [a, cmd]() -> int { return run(*a, cmd); };
}

}  // namespace harvit::cli
