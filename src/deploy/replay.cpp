#include "deploy/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "core/tensor.h"

namespace harvit::deploy {

MemoryUse memory_use() {
  MemoryUse m;
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return m;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    long long v = 0;
    if (std::sscanf(line, "VmRSS: %lld kB", &v) == 1) m.rss_kb = v;
    else if (std::sscanf(line, "VmHWM: %lld kB", &v) == 1) m.hwm_kb = v;
  }
  std::fclose(f);
  return m;
}

double ReplayResult::latency_ms(double p, bool cpu) const {
  if ((cpu ? cpu_latencies_s : latencies_s).empty()) return 0.0;
  std::vector<double> v = cpu ? cpu_latencies_s : latencies_s;
  std::sort(v.begin(), v.end());
  const int64_t n = static_cast<int64_t>(v.size());
  const int64_t k = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(p * n - 1e-9)) - 1, 0, n - 1);
  return 1e3 * v[k];
}

nlohmann::json ReplayResult::cost_json() const {
  auto mem = [](const MemoryUse& m) { return nlohmann::json{{"VmRSS_kB", m.rss_kb}, {"VmHWM_kB", m.hwm_kb}}; };
  double mean = 0;
  for (double l : latencies_s) mean += l;
  mean = latencies_s.empty() ? 0.0 : 1e3 * mean / latencies_s.size();
  return {{"decisions", decisions},
          {"samples", samples},
          {"duration_s", duration_s},
          {"latency_ms", {{"p50", latency_ms(0.5)}, {"p90", latency_ms(0.9)}, {"p99", latency_ms(0.99)},
                          {"max", latency_ms(1.0)}, {"mean", mean}}},
          {"thread_cpu_ms_per_decision_push", {{"p50", latency_ms(0.5, true)}, {"p99", latency_ms(0.99, true)}}},
          {"classify_s", classify_s},
          {"push_loop_s", push_s},
          {"core_share", core_share()},
          {"push_loop_core_share", duration_s > 0 ? push_s / duration_s : 0.0},
          {"memory", {{"before_recognizer", mem(before_recognizer)}, {"after_recognizer", mem(after_recognizer)},
                      {"after_replay", mem(after_replay)}}}};
}

ReplayResult replay(StreamRecognizer& rec, const data::RawData& raw, const std::vector<int32_t>& subjects,
                    const MemoryUse& memory_before) {
  const int64_t M = rec.axes();
  if (static_cast<int64_t>(raw.axis_names.size()) != M)
    fail("replay: the model reads " + std::to_string(M) + " axes, the recordings have " +
         std::to_string(raw.axis_names.size()));
  if (raw.axis_names != rec.axis_names()) {
    // axis0.. names mean the checkpoint did not record them; anything else must match
    bool generic = true;
    for (size_t i = 0; i < rec.axis_names().size(); ++i) generic &= rec.axis_names()[i] == "axis" + std::to_string(i);
    if (!generic) fail("replay: the model's axes differ from the recordings' (order matters)");
  }
  ReplayResult r;
  r.before_recognizer = memory_before;
  r.after_recognizer = memory_use();
  const int64_t shift = rec.window() / 2 + rec.hop() / 2;
  for (const auto& st : raw.streams) {
    if (!subjects.empty() && std::find(subjects.begin(), subjects.end(), st.subject) == subjects.end()) continue;
    ReplayedRecording out;
    out.source = st.source;
    out.subject = st.subject;
    out.truth = st.label;
    const int64_t n = st.size();
    out.pred.assign(n, -1);
    rec.reset();
    std::vector<double> lat;
    lat.reserve(n / std::max<int64_t>(1, rec.hop()) + 2);
    std::vector<double> cpu;
    cpu.reserve(lat.capacity());
    int32_t label = -1;
    Decision d;
    timespec c0{}, c1{};
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < n; ++i) {
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
      const int64_t made = rec.push(st.values.data() + i * M, 1);
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
      if (made > 0) {
        lat.push_back(rec.last_latency_s());  // one push of one sample makes at most one decision
        cpu.push_back((c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec));
        while (rec.next(d)) label = d.label;
      }
      out.pred[i] = label;
    }
    out.push_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out.decisions = static_cast<int64_t>(lat.size());
    for (double l : lat) out.classify_s += l;
    out.duration_s = n / raw.rate_hz;
    out.pred_aligned.assign(n, -1);
    for (int64_t i = 0; i < n; ++i) out.pred_aligned[i] = out.pred[std::min(i + shift, n - 1)];
    r.latencies_s.insert(r.latencies_s.end(), lat.begin(), lat.end());
    r.cpu_latencies_s.insert(r.cpu_latencies_s.end(), cpu.begin(), cpu.end());
    r.decisions += out.decisions;
    r.samples += n;
    r.classify_s += out.classify_s;
    r.push_s += out.push_s;
    r.duration_s += out.duration_s;
    r.recordings.push_back(std::move(out));
  }
  r.after_replay = memory_use();
  if (r.recordings.empty()) fail("replay: no recording of the subjects asked for");
  return r;
}

}  // namespace harvit::deploy
