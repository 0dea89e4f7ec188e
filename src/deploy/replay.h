// Replay of whole recordings through the streaming recogniser (deploy/stream.h), one sample per
// push as a sensor callback would deliver them, and what it costs.
//
// Labels per sample, causal: the label in force at sample i is the `label` of the last decision
// made at or before i (a decision made by the push of sample i counts from sample i on); -1 before
// the first decision of the recording and while the decision's label is -1 (unknown, deploy/stream.h).
// Aligned (NOT causal, for comparison only): the same sequence of labels moved earlier by
// window/2 + hop/2 samples, so that each decision covers the hop centred on its window's centre
// (the decision at end e labels [e - window/2 - hop/2, next e - window/2 - hop/2)); the tail holds
// the last label. It shows how much of the error is the recogniser's inherent delay.
// Each recording starts with reset(), so nothing carries over from the previous one.
//
// Cost: each decision's StreamRecognizer::last_latency_s (normalise + forward + smoothing, wall
// clock), the thread CPU time of the push that made it (load-independent), their
// sum against the recordings' duration (the share of one core the recogniser needs at the
// sensor's rate), the wall time of the whole push loop, and the process's resident memory
// (VmRSS, VmHWM from /proc/self/status) before the recogniser is built, after it is built, and
// after the replay (the loaded recordings are part of every figure; the differences are the
// recogniser's).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/loaders.h"
#include "deploy/stream.h"

namespace harvit::deploy {

struct ReplayedRecording {
  std::string source;
  int32_t subject = 0;
  std::vector<int32_t> truth;         // per sample, as loaded (-1 unlabelled, >= C other classes)
  std::vector<int32_t> pred;          // causal, see above
  std::vector<int32_t> pred_aligned;  // not causal, see above
  int64_t decisions = 0;
  double classify_s = 0;              // sum of the decisions' latencies
  double push_s = 0;                  // wall time of the push loop
  double duration_s = 0;              // samples / rate
};

struct MemoryUse {
  int64_t rss_kb = -1, hwm_kb = -1;  // -1 where /proc/self/status is not readable
};
MemoryUse memory_use();

struct ReplayResult {
  std::vector<ReplayedRecording> recordings;
  std::vector<double> latencies_s;  // every decision's, in order (wall clock)
  // the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID) of each push that made a decision:
  // unlike the wall clock, it leaves out the time the thread was not running (a loaded machine)
  std::vector<double> cpu_latencies_s;
  int64_t decisions = 0, samples = 0;
  double classify_s = 0, push_s = 0, duration_s = 0;
  MemoryUse before_recognizer, after_recognizer, after_replay;
  // percentile (0..1] of the latencies (cpu: of cpu_latencies_s), nearest rank, in milliseconds
  double latency_ms(double p, bool cpu = false) const;
  double core_share() const { return duration_s > 0 ? classify_s / duration_s : 0.0; }
  nlohmann::json cost_json() const;
};

// Replays the streams of `raw` whose subject is in `subjects` (all when empty), in the order of
// `raw.streams`. The recogniser's axes must be raw's axes in the same order.
// `memory_before` is the reading taken before the recogniser was built (memory_use()).
ReplayResult replay(StreamRecognizer& rec, const data::RawData& raw, const std::vector<int32_t>& subjects,
                    const MemoryUse& memory_before = {});

}  // namespace harvit::deploy
