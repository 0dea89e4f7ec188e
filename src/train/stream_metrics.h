// Metrics of a per-sample predicted label sequence against the per-sample truth of continuous
// recordings (a streaming recogniser replayed over raw data, deploy/replay.h), summed over
// recordings.
//
// Inputs, per recording (add()): truth[i] and pred[i] for every sample i, same length.
//   truth: 0..C-1  one of the model's classes            -> a "scored" sample
//          >= C    a class the model does not have (HAPT's postural transitions) -> "transition"
//          < 0     unlabelled                             -> "unlabelled"
//   pred:  0..C-1  the label in force at that sample; -1 = none: before the first decision, or
//          "unknown" (a recogniser with a rejection threshold); scored like a wrong label, and a
//          change into or out of it is not a switch
// Recordings are independent: nothing (runs, segments, switches, delays) spans two of them.
//
// 1. Sample level, over the scored samples only (transition and unlabelled samples are not errors
//    of the C classes; what was predicted there is counted in `transition_pred` / `unlabelled_pred`,
//    C+1 columns, the last = none):
//    confusion (C, C+1): rows true class, columns predicted class, last column none.
//    accuracy = trace / scored samples (a "none" at a scored sample counts as wrong).
//    per class: precision = confusion[c][c] / column c, recall = confusion[c][c] / row c,
//    F1 = 2PR/(P+R) (0 where undefined); macro-F1 = their plain mean over the C classes.
//
// 2. Runs, switches and delay (original sample indexes).
//    A *true run* is a maximal stretch of scored samples of one class, where the transition and
//    unlabelled samples in between are skipped over: standing, 50 unlabelled, standing is ONE run.
//    end(k) = the last scored sample of run k, start(k) = its first. Consecutive runs differ in
//    class; each run k >= 1 is a *true change* (from the class of run k-1 to that of run k).
//    A *predicted switch* is a sample i >= 1 with pred[i-1] >= 0, pred[i] >= 0, pred[i] != pred[i-1]
//    (the first label after "none" is not a switch). Switches are counted wherever they happen.
//    Matching: true change k >= 1 (to class b) owns the region R(k) = [end(k-1)+1, end(k)]
//    (the skipped samples before it, then the run). The first predicted switch into b inside R(k)
//    is *matched*; every other predicted switch is *false* (also those in R(0) = [0, end(0)] and
//    in the tail after the last run, or in a recording without scored samples).
//    false switches are also broken down by the truth at the switch sample (scored, transition,
//    unlabelled). Rates per minute divide by the total duration of all samples (n / rate_hz / 60).
//    Delay of true change k: d = (first i in [start(k), start(k+1)) with pred[i] == b) - start(k),
//    in samples (start(k+1) = the recording's end for the last run); 0 when the prediction
//    already was b. No such i: "never caught up" (counted, not in the delay statistics). Median
//    and p90 are nearest-rank over the caught-up changes (p: sorted[ceil(p n) - 1]), in seconds.
//
// 3. Frame and event metrics after Ward, Lukowicz & Gellersen, "Performance metrics for activity
//    recognition", ACM TIST 2(1), 2011, for each class c "one class versus all", summed over the
//    classes. They are computed on the scored samples only, in order, with the transition and
//    unlabelled samples cut out (they are "don't care": a prediction there is neither an
//    insertion nor an overfill, and two labelled stretches of one class with only such samples
//    between them form one event, as in a true run above). On that compacted sequence of frames:
//      g[i] = (truth == c), p[i] = (pred == c) (a "none" prediction is negative for every class).
//      An *event* is a maximal run of g = 1, a *return* a maximal run of p = 1.
//      A *segment* is a maximal run of constant (g, p): TP (1,1), TN (0,0), FP (0,1), FN (1,0).
//      FP segment (inside one return, where TP and FP segments alternate):
//        insertion  I  the return holds no TP segment (it overlaps no event)
//        merge      M  it lies between two TP segments of its return (it joins two events)
//        overfill   O  otherwise (at the start or end of a return that overlaps an event)
//      FN segment (inside one event, where TP and FN segments alternate):
//        deletion      D  the event holds no TP segment (no return overlaps it)
//        fragmentation F  it lies between two TP segments of its event (it splits the return)
//        underfill     U  otherwise (at the start or end of an event that was detected)
//      Each category is counted in segments and in frames. Frame rates as in Ward et al.:
//      D, F, U and TP frames over P (the positive frames), I, M, O and TN frames over N (the
//      negative frames), with P and N summed over the classes too.
//      substitution S (multi-class view, not per class): a maximal run of constant (truth, pred)
//      on the compacted frames with truth != pred and pred a class (not none); counted in
//      segments and frames. Since the cut-out leaves no NULL class in the truth, every wrong
//      frame with a prediction is a substitution - and, per class, one FP frame of the predicted
//      class and one FN frame of the true class (so I+M+O frames = S frames, and D+F+U frames =
//      S frames + the frames with no prediction).
//      Events (per class, summed), by the returns that overlap them (share a frame):
//        deleted D: none; correct C: exactly one, and it overlaps no other event; fragmented F:
//        two or more, none of which overlaps another event; merged M: exactly one, and it also
//        overlaps another event; fragmented and merged FM: two or more, one of which overlaps
//        another event.
//      Returns, by the events they overlap: inserted I': none; correct C': exactly one, which no
//        other return overlaps; fragmenting F': exactly one, which other returns overlap too;
//        merging M': two or more, none of them overlapped by another return; fragmenting and
//        merging FM': two or more, one of them overlapped by another return.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace harvit::train {

// Ward et al. counts for one class (or summed over classes).
struct WardCounts {
  // segments and frames per category
  int64_t seg_tp = 0, seg_tn = 0, seg_i = 0, seg_m = 0, seg_o = 0, seg_d = 0, seg_f = 0, seg_u = 0;
  int64_t fr_tp = 0, fr_tn = 0, fr_i = 0, fr_m = 0, fr_o = 0, fr_d = 0, fr_f = 0, fr_u = 0;
  int64_t positives = 0, negatives = 0;  // P, N frames
  // events (truth) and returns (predictions)
  int64_t events = 0, ev_correct = 0, ev_fragmented = 0, ev_merged = 0, ev_frag_merged = 0, ev_deleted = 0;
  // returns: correct (overlaps one event, which no other return overlaps), fragmenting (overlaps
  // one event that other returns also overlap), merging (overlaps two or more events, none
  // fragmented), fragmenting and merging (two or more events, one of them fragmented), inserted
  int64_t returns = 0, ret_correct = 0, ret_fragmenting = 0, ret_merging = 0, ret_frag_merging = 0, ret_inserted = 0;
  WardCounts& operator+=(const WardCounts& o);
};

// Ward et al. for one binary sequence (g, p as 0/1 of one class on the compacted frames).
WardCounts ward_binary(const std::vector<uint8_t>& g, const std::vector<uint8_t>& p);

struct StreamMetrics {
  int64_t C = 0;
  double rate_hz = 50.0;
  int64_t recordings = 0, samples = 0;                   // all samples
  int64_t scored = 0, transition = 0, unlabelled = 0;    // samples by truth kind
  std::vector<int64_t> confusion;                        // (C, C+1)
  std::vector<int64_t> transition_pred, unlabelled_pred; // (C+1) each, last = none
  // switches
  int64_t pred_switches = 0, true_changes = 0, matched_switches = 0;
  int64_t false_at_scored = 0, false_at_transition = 0, false_at_unlabelled = 0;
  // delay of each caught-up true change, samples; and the changes never caught up
  std::vector<int64_t> delays;
  int64_t never_caught_up = 0;
  // Ward et al.
  std::vector<WardCounts> per_class;  // (C)
  WardCounts ward;                    // summed over classes
  int64_t sub_segments = 0, sub_frames = 0;

  StreamMetrics(int64_t classes, double rate);
  // One recording. Throws when the lengths differ or a prediction is >= C.
  void add(const std::vector<int32_t>& truth, const std::vector<int32_t>& pred);

  double minutes() const { return samples / rate_hz / 60.0; }
  double accuracy() const;
  double recall(int64_t c) const;
  double precision(int64_t c) const;
  double f1(int64_t c) const;
  double f1_macro() const;
  int64_t false_switches() const { return pred_switches - matched_switches; }
  double switches_per_min() const;
  double true_changes_per_min() const;
  double false_switches_per_min() const;
  // nearest-rank percentile of the delays in seconds (p in (0, 1]); -1 when there are none
  double delay_s(double p) const;

  // Every figure above, with class names (C names; the transition names are not needed).
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
};

}  // namespace harvit::train
