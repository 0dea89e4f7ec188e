// The streaming recogniser: labels a live stream of sensor samples inside someone else's program.
//
// Samples are pushed in any amount (one at a time or in blocks, with optional timestamps) into a
// ring buffer of one model window; every `hop` samples the last window is classified (through
// deploy/classifier.h, the same code as `harvit predict`), the class probabilities are smoothed
// over the last `smooth` hops, and the label changes only when a new class has won `hysteresis`
// consecutive hops, so a single noisy hop does not flip it.
//
// Smoothing (the two schemes of Edge Impulse's SDK and TensorFlow Lite Micro's gesture example):
//   mean  the candidate is the argmax of the probabilities averaged over the last `smooth` hops;
//         it may replace the current label only when its averaged probability reaches
//         `min_confidence`;
//   vote  each hop votes for its own argmax when that hop's probability reaches `min_confidence`;
//         the candidate is a class with at least `votes` of the last `smooth` votes (default a
//         majority); without one, the label stays.
//
// Threading and memory: by default one instance runs on the calling thread and never wakes or
// spins a thread pool (core/threading.h); `threads > 1` lends it the OpenMP pool instead. After
// construction (which runs one warm-up classification), push, next and reset allocate no heap
// memory. An instance is not thread-safe: one producer thread at a time.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "deploy/classifier.h"

namespace harvit::deploy {

enum class Smoothing { Mean, Vote };
// "mean" | "vote"; anything else fails naming the accepted values.
Smoothing parse_smoothing(const std::string& s);
const char* smoothing_name(Smoothing s);

struct StreamOptions {
  std::string precision = "fp32";    // fp32 | int8
  int64_t hop = 0;                   // samples between classifications; 0 = half a window
  int smooth = 1;                    // hops smoothed over (1 = none)
  Smoothing method = Smoothing::Mean;
  int votes = 0;                     // vote: agreeing hops needed of the last `smooth` (0 = majority)
  float min_confidence = 0.0f;       // see above; 0 = any
  int hysteresis = 1;                // consecutive hops a new class must win to become the label
  float reject = -1.0f;              // "unknown" (label -1) when the smoothed top probability is
                                     // below this; -1 = the checkpoint's calibrated threshold
                                     // (`harvit calibrate`; 0 when uncalibrated), 0 = never
  int64_t max_gap_ns = 0;            // with timestamps: a larger gap (or a step back) restarts the
                                     // window and the smoothing; 0 = never
  int64_t queue = 256;               // decisions kept until read; when full the oldest is dropped
  int threads = 1;                   // 1 = the calling thread only; > 1 = the OpenMP pool
};

// Throws std::runtime_error naming the first option out of range (the constructor's own check,
// before it reads the checkpoint).
void check_options(const StreamOptions& opt);

struct Decision {
  int64_t end = 0;            // samples pushed when it was made: the window is [end - window, end)
  int64_t time_ns = -1;       // timestamp of the window's last sample, -1 without timestamps
  int32_t label = -1;         // the smoothed, held label (class index); -1 = unknown: below the
                              // rejection threshold, or no confident label yet
  float confidence = 0.0f;    // the smoothed probability of `label`
  int32_t hop_label = -1;     // this hop's own argmax, unsmoothed
  float hop_confidence = 0.0f;
  bool changed = false;       // label differs from the previous decision's (true for the first)
  const float* probs = nullptr;  // smoothed probabilities (C); valid until the next push or reset
};

// The smoothing and hysteresis of the recogniser on their own: fed one hop's class probabilities
// at a time, it keeps the held label. Allocates only at construction.
class Smoother {
 public:
  // opt: smooth, method, votes, min_confidence, hysteresis; reject: the threshold itself (>= 0).
  Smoother(int64_t classes, const StreamOptions& opt, float reject = 0.0f);
  // Takes one hop's probabilities (C); returns the held label (-1 = unknown, or none yet).
  // "Unknown" is a state like a class: entering and leaving it follow the hysteresis rule.
  int32_t update(const float* probs);
  int32_t label() const { return label_; }
  const float* smoothed() const { return smoothed_.data(); }  // the mean over the hops held (C)
  void reset();

 private:
  int64_t C_, S_;
  Smoothing method_;
  int votes_needed_;
  float min_conf_, reject_;
  int hysteresis_;
  bool started_ = false;  // a first label has been taken
  std::vector<float> hist_probs_, smoothed_;  // the last S hops' probabilities (S, C), a ring
  std::vector<int32_t> hist_label_, votes_;   // their votes (-1 = below min_confidence)
  int64_t n_ = 0, head_ = 0;
  int32_t label_ = -1, pending_ = kNone;
  int pending_count_ = 0;
  static constexpr int32_t kNone = -2;  // no candidate this hop (the label stays)
};

class StreamRecognizer {
 public:
  // Errors (unreadable checkpoint, bad options) throw std::runtime_error naming the problem.
  StreamRecognizer(const std::string& checkpoint, const StreamOptions& opt = {});

  // Pushes n samples (n, axes()), row-major, raw sensor units, axes in the model's order, with
  // optional timestamps (n, nanoseconds). Classifies every hop; the decisions queue up for next()
  // (or go to the callback). Returns the number of decisions this call made.
  int64_t push(const float* samples, int64_t n, const int64_t* time_ns = nullptr);
  // The oldest unread decision; false when there is none.
  bool next(Decision& d);
  // Delivers each decision to cb during push instead of queueing it (nullptr: queue again).
  using Callback = void (*)(const Decision& d, void* user);
  void set_callback(Callback cb, void* user);
  // Forgets the buffered samples, the smoothing history and the label (a new recording); the
  // sample count goes on.
  void reset();

  const std::vector<std::string>& class_names() const { return clf_.class_names(); }
  const std::vector<std::string>& axis_names() const { return clf_.axis_names(); }
  int64_t window() const { return T_; }
  int64_t axes() const { return M_; }
  int64_t classes() const { return C_; }
  int64_t hop() const { return hop_; }
  const StreamOptions& options() const { return opt_; }
  float reject() const { return reject_; }  // the rejection threshold in force
  int64_t samples() const { return seen_; }        // pushed so far
  int64_t decisions() const { return made_; }      // made so far
  int64_t dropped() const { return dropped_; }     // lost to a full queue
  int64_t gaps() const { return gaps_; }           // restarts after a timestamp gap or step back
  // Seconds the last classification took (normalise + forward + smoothing).
  double last_latency_s() const { return last_latency_s_; }

 private:
  void classify_hop(int64_t time_ns);
  void restart();

  Classifier clf_;
  StreamOptions opt_;
  int64_t T_, M_, C_, hop_;
  float reject_;
  std::vector<float> ring_, window_;  // ring (T, M); window: the ring in time order
  int64_t head_ = 0, filled_ = 0, since_ = 0, seen_ = 0, made_ = 0, dropped_ = 0, gaps_ = 0;
  int64_t last_time_ = -1;
  Smoother smoother_;
  // decision queue (queue, ...) with its probabilities (queue, C)
  std::vector<Decision> q_;
  std::vector<float> q_probs_;
  int64_t q_head_ = 0, q_size_ = 0;
  std::vector<float> cb_probs_;
  Callback cb_ = nullptr;
  void* cb_user_ = nullptr;
  double last_latency_s_ = 0;
};

}  // namespace harvit::deploy
