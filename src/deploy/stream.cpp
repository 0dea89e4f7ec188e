#include "deploy/stream.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/tensor.h"
#include "core/threading.h"

namespace harvit::deploy {

Smoothing parse_smoothing(const std::string& s) {
  if (s == "mean") return Smoothing::Mean;
  if (s == "vote") return Smoothing::Vote;
  fail("unknown smoothing \"" + s + "\" (mean | vote)");
}

const char* smoothing_name(Smoothing s) { return s == Smoothing::Vote ? "vote" : "mean"; }

namespace {
// The options, validated (before the checkpoint is read).
const StreamOptions& checked(const StreamOptions& o) {
  if (o.precision != "fp32" && o.precision != "int8")
    fail("streaming runs fp32 or int8, not \"" + o.precision + "\" (bf16 GEMMs go through oneDNN primitives, which allocate per call)");
  if (o.hop < 0) fail("hop must be positive (0 = half a window), got " + std::to_string(o.hop));
  if (o.smooth < 1) fail("smooth must be at least 1 hop, got " + std::to_string(o.smooth));
  if (o.votes < 0 || o.votes > o.smooth)
    fail("votes must be between 1 and smooth (" + std::to_string(o.smooth) + "), or 0 for a majority; got " +
         std::to_string(o.votes));
  if (!(o.min_confidence >= 0.0f && o.min_confidence <= 1.0f))
    fail("min_confidence must be in [0, 1], got " + std::to_string(o.min_confidence));
  if (!(o.reject == -1.0f || (o.reject >= 0.0f && o.reject <= 1.0f)))
    fail("reject must be in [0, 1], or -1 for the checkpoint's calibrated threshold; got " + std::to_string(o.reject));
  if (o.hysteresis < 1) fail("hysteresis must be at least 1 hop, got " + std::to_string(o.hysteresis));
  if (o.max_gap_ns < 0) fail("max_gap_ns must be >= 0 (0 = never restart)");
  if (o.queue < 1) fail("queue must hold at least 1 decision");
  if (o.threads < 1) fail("threads must be at least 1");
  return o;
}
}  // namespace

void check_options(const StreamOptions& opt) { checked(opt); }

Smoother::Smoother(int64_t classes, const StreamOptions& opt, float reject)
    : C_(classes),
      S_(opt.smooth),
      method_(opt.method),
      votes_needed_(opt.votes ? opt.votes : opt.smooth / 2 + 1),
      min_conf_(opt.min_confidence),
      reject_(reject),
      hysteresis_(opt.hysteresis),
      hist_probs_(S_ * C_, 0.0f),
      smoothed_(C_, 0.0f),
      hist_label_(S_, -1),
      votes_(C_, 0) {}

void Smoother::reset() {
  n_ = head_ = 0;
  label_ = -1;
  pending_ = kNone;
  pending_count_ = 0;
  started_ = false;
}

int32_t Smoother::update(const float* p) {
  const int32_t hop_label = static_cast<int32_t>(std::max_element(p, p + C_) - p);
  std::memcpy(hist_probs_.data() + head_ * C_, p, C_ * sizeof(float));
  hist_label_[head_] = p[hop_label] >= min_conf_ ? hop_label : -1;
  head_ = (head_ + 1) % S_;
  n_ = std::min(n_ + 1, S_);
  // the mean over the hops held
  std::fill(smoothed_.begin(), smoothed_.end(), 0.0f);
  for (int64_t h = 0; h < n_; ++h)
    for (int64_t c = 0; c < C_; ++c) smoothed_[c] += hist_probs_[h * C_ + c];
  for (float& v : smoothed_) v /= static_cast<float>(n_);
  // the candidate: a class, unknown (-1), or none (the label stays)
  int32_t cand = kNone;
  const int32_t top = static_cast<int32_t>(std::max_element(smoothed_.begin(), smoothed_.end()) - smoothed_.begin());
  if (method_ == Smoothing::Mean) {
    if (smoothed_[top] >= min_conf_) cand = top;
  } else {
    std::fill(votes_.begin(), votes_.end(), 0);
    for (int64_t h = 0; h < n_; ++h)
      if (hist_label_[h] >= 0) ++votes_[hist_label_[h]];
    // until the history is full, a majority of the hops there are (and never more than asked)
    const int need = n_ < S_ ? static_cast<int>(std::min<int64_t>(votes_needed_, n_ / 2 + 1)) : votes_needed_;
    int best = 0;
    for (int64_t c = 0; c < C_; ++c)
      if (votes_[c] >= need && votes_[c] > best) best = votes_[c], cand = static_cast<int32_t>(c);
  }
  if (reject_ > 0.0f && smoothed_[top] < reject_) cand = -1;  // what it was not trained on
  // hysteresis: the first label is taken at once; a new one (or unknown) must win `hysteresis`
  // hops in a row
  if (cand != kNone && cand != label_) {
    if (!started_) {
      label_ = cand;
      pending_ = kNone, pending_count_ = 0;
    } else {
      if (cand == pending_) ++pending_count_;
      else pending_ = cand, pending_count_ = 1;
      if (pending_count_ >= hysteresis_) label_ = cand, pending_ = kNone, pending_count_ = 0;
    }
  } else {
    pending_ = kNone, pending_count_ = 0;
  }
  if (label_ >= 0) started_ = true;
  return label_;
}

StreamRecognizer::StreamRecognizer(const std::string& checkpoint, const StreamOptions& opt)
    : clf_(checkpoint, checked(opt).precision),
      opt_(opt),
      T_(clf_.window()),
      M_(clf_.axes()),
      C_(clf_.classes()),
      hop_(opt_.hop ? opt_.hop : std::max<int64_t>(1, T_ / 2)),
      reject_(opt_.reject < 0 ? clf_.threshold() : opt_.reject),
      smoother_(C_, opt_, reject_) {
  ring_.assign(T_ * M_, 0.0f);
  window_.assign(T_ * M_, 0.0f);
  q_.assign(opt_.queue, Decision{});
  q_probs_.assign(opt_.queue * C_, 0.0f);
  cb_probs_.assign(C_, 0.0f);
  // Warm-up: one classification sizes every buffer the forward pass needs (model activations,
  // int8 scratch, per-thread GEMM scratch), so that push never allocates.
  {
    SerialScope serial;
    clf_.classify(window_.data(), 1);
  }
  if (opt_.threads > 1) clf_.classify(window_.data(), 1);
}

void StreamRecognizer::set_callback(Callback cb, void* user) {
  cb_ = cb;
  cb_user_ = user;
}

void StreamRecognizer::restart() {
  head_ = filled_ = since_ = 0;
  smoother_.reset();
}

void StreamRecognizer::reset() {
  restart();
  last_time_ = -1;
  q_head_ = q_size_ = 0;
}

int64_t StreamRecognizer::push(const float* samples, int64_t n, const int64_t* time_ns) {
  const int64_t before = made_;
  for (int64_t i = 0; i < n; ++i) {
    int64_t t = -1;
    if (time_ns) {
      t = time_ns[i];
      if (opt_.max_gap_ns > 0 && last_time_ >= 0 && (t - last_time_ > opt_.max_gap_ns || t < last_time_)) {
        restart();
        ++gaps_;
      }
      last_time_ = t;
    }
    std::memcpy(ring_.data() + head_ * M_, samples + i * M_, M_ * sizeof(float));
    head_ = head_ + 1 == T_ ? 0 : head_ + 1;
    ++seen_;
    if (filled_ < T_) {  // the first full window is classified at once, then every hop
      if (++filled_ == T_) classify_hop(t), since_ = 0;
    } else if (++since_ == hop_) {
      classify_hop(t);
      since_ = 0;
    }
  }
  return made_ - before;
}

void StreamRecognizer::classify_hop(int64_t time_ns) {
  const auto t0 = std::chrono::steady_clock::now();
  // the ring in time order: [head, T) then [0, head)
  const int64_t tail = T_ - head_;
  std::memcpy(window_.data(), ring_.data() + head_ * M_, tail * M_ * sizeof(float));
  std::memcpy(window_.data() + tail * M_, ring_.data(), head_ * M_ * sizeof(float));
  const float* p;
  if (opt_.threads > 1) {
    p = clf_.classify(window_.data(), 1);
  } else {
    SerialScope serial;
    p = clf_.classify(window_.data(), 1);
  }
  const int32_t hop_label = static_cast<int32_t>(std::max_element(p, p + C_) - p);
  const int32_t before = smoother_.label();
  const int32_t label = smoother_.update(p);
  const float* smoothed = smoother_.smoothed();
  Decision d;
  d.end = seen_;
  d.time_ns = time_ns;
  d.label = label;
  d.confidence = label >= 0 ? smoothed[label] : 0.0f;
  d.hop_label = hop_label;
  d.hop_confidence = p[hop_label];
  d.changed = label != before;
  ++made_;
  last_latency_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (cb_) {
    std::memcpy(cb_probs_.data(), smoothed, C_ * sizeof(float));
    d.probs = cb_probs_.data();
    cb_(d, cb_user_);
    return;
  }
  if (q_size_ == opt_.queue) {  // full: drop the oldest
    q_head_ = (q_head_ + 1) % opt_.queue;
    --q_size_;
    ++dropped_;
  }
  const int64_t slot = (q_head_ + q_size_) % opt_.queue;
  std::memcpy(q_probs_.data() + slot * C_, smoothed, C_ * sizeof(float));
  d.probs = q_probs_.data() + slot * C_;
  q_[slot] = d;
  ++q_size_;
}

bool StreamRecognizer::next(Decision& d) {
  if (q_size_ == 0) return false;
  d = q_[q_head_];
  q_head_ = (q_head_ + 1) % opt_.queue;
  --q_size_;
  return true;
}

}  // namespace harvit::deploy
