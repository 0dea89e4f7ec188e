// Stream metrics (train/stream_metrics.h) on small hand-made sequences; every expected figure is
// worked out by hand in the comments.
#include <gtest/gtest.h>

#include "train/stream_metrics.h"

using harvit::train::StreamMetrics;
using harvit::train::ward_binary;
using harvit::train::WardCounts;

namespace {
std::vector<uint8_t> bits(const std::string& s) {
  std::vector<uint8_t> v;
  for (char c : s) v.push_back(c == '1');
  return v;
}
}  // namespace

// Two classes at 1 Hz; 2 is a transition class, -1 unlabelled.
//   i     0  1  2  3  4  5  6  7  8  9 10 11 12 13
//   truth 0  0  0  0 -1 -1  1  1  1  1  2  2  0  0
//   pred -1  0  0  1  1  1  0  0  1  1  1  0  0  0
TEST(StreamMetrics, SampleLevelSwitchesDelays) {
  StreamMetrics m(2, 1.0);
  m.add({0, 0, 0, 0, -1, -1, 1, 1, 1, 1, 2, 2, 0, 0}, {-1, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0, 0});
  EXPECT_EQ(m.samples, 14);
  EXPECT_EQ(m.scored, 10);
  EXPECT_EQ(m.transition, 2);
  EXPECT_EQ(m.unlabelled, 2);
  // true 0 at 0,1,2,3,12,13 -> predicted none,0,0,1,0,0; true 1 at 6..9 -> 0,0,1,1
  EXPECT_EQ(m.confusion, (std::vector<int64_t>{4, 1, 1, 2, 2, 0}));
  EXPECT_DOUBLE_EQ(m.accuracy(), 6.0 / 10);
  EXPECT_DOUBLE_EQ(m.precision(0), 4.0 / 6);  // column 0: 4 + 2
  EXPECT_DOUBLE_EQ(m.recall(0), 4.0 / 6);     // row 0 incl. none
  EXPECT_DOUBLE_EQ(m.precision(1), 2.0 / 3);
  EXPECT_DOUBLE_EQ(m.recall(1), 2.0 / 4);
  EXPECT_NEAR(m.f1(1), 4.0 / 7, 1e-12);       // 2 (2/3)(1/2) / (7/6)
  EXPECT_NEAR(m.f1_macro(), (2.0 / 3 + 4.0 / 7) / 2, 1e-12);
  EXPECT_EQ(m.transition_pred, (std::vector<int64_t>{1, 1, 0}));  // i10 -> 1, i11 -> 0
  EXPECT_EQ(m.unlabelled_pred, (std::vector<int64_t>{0, 2, 0}));  // i4, i5 -> 1
  // switches at 3 (0->1), 6 (1->0), 8 (0->1), 11 (1->0); i1 (none->0) is not one.
  // true runs: 0 [0..3], 1 [6..9], 0 [12..13] (the transition skipped): 2 changes.
  // R(1) = [4, 9]: first switch into 1 is 8. R(2) = [10, 13]: first switch into 0 is 11.
  EXPECT_EQ(m.pred_switches, 4);
  EXPECT_EQ(m.true_changes, 2);
  EXPECT_EQ(m.matched_switches, 2);
  EXPECT_EQ(m.false_switches(), 2);  // 3 (truth 0) and 6 (truth 1), both at scored samples
  EXPECT_EQ(m.false_at_scored, 2);
  EXPECT_EQ(m.false_at_transition, 0);
  EXPECT_EQ(m.false_at_unlabelled, 0);
  EXPECT_NEAR(m.switches_per_min(), 4 * 60.0 / 14, 1e-9);
  EXPECT_NEAR(m.false_switches_per_min(), 2 * 60.0 / 14, 1e-9);
  EXPECT_NEAR(m.true_changes_per_min(), 2 * 60.0 / 14, 1e-9);
  // delays: change to 1 at 6, first pred 1 in [6, 12) at 8 -> 2; change to 0 at 12: 0.
  EXPECT_EQ(m.delays, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(m.never_caught_up, 0);
  EXPECT_DOUBLE_EQ(m.delay_s(0.5), 0.0);  // sorted {0, 2}, rank ceil(1) = 1
  EXPECT_DOUBLE_EQ(m.delay_s(0.9), 2.0);  // rank ceil(1.8) = 2
  // Ward et al. on the compacted frames (i 0,1,2,3,6,7,8,9,12,13):
  //   truth 0 0 0 0 1 1 1 1 0 0
  //   pred  - 0 0 1 0 0 1 1 0 0
  // substitutions: (0,1) at frame 3 and (1,0) at frames 4-5: 2 segments, 3 frames.
  EXPECT_EQ(m.sub_segments, 2);
  EXPECT_EQ(m.sub_frames, 3);
  // class 0: g 1111000011, p 0110110011 -> FN(U) TP FN(U) FP(I, 2 frames) TN TP
  const WardCounts& w0 = m.per_class[0];
  EXPECT_EQ(w0.seg_u, 2);
  EXPECT_EQ(w0.fr_u, 2);
  EXPECT_EQ(w0.seg_i, 1);
  EXPECT_EQ(w0.fr_i, 2);
  EXPECT_EQ(w0.seg_tp, 2);
  EXPECT_EQ(w0.fr_tp, 4);
  EXPECT_EQ(w0.events, 2);
  EXPECT_EQ(w0.ev_correct, 2);
  EXPECT_EQ(w0.returns, 3);
  EXPECT_EQ(w0.ret_correct, 2);
  EXPECT_EQ(w0.ret_inserted, 1);
  // class 1: g 0000111100, p 0001001100 -> TN FP(I) FN(U, 2 frames) TP TN
  const WardCounts& w1 = m.per_class[1];
  EXPECT_EQ(w1.seg_i, 1);
  EXPECT_EQ(w1.fr_i, 1);
  EXPECT_EQ(w1.seg_u, 1);
  EXPECT_EQ(w1.fr_u, 2);
  EXPECT_EQ(w1.ev_correct, 1);
  EXPECT_EQ(w1.ret_inserted, 1);
  // summed: I+M+O frames = substitution frames; D+F+U = substitutions + the one "none" frame
  EXPECT_EQ(m.ward.fr_i + m.ward.fr_m + m.ward.fr_o, 3);
  EXPECT_EQ(m.ward.fr_d + m.ward.fr_f + m.ward.fr_u, 4);
  EXPECT_EQ(m.ward.positives, 10);
  EXPECT_EQ(m.ward.negatives, 10);
  EXPECT_EQ(m.ward.fr_tp, 6);
  EXPECT_EQ(m.ward.fr_tn, 7);
  EXPECT_EQ(m.ward.events, 3);
  EXPECT_EQ(m.ward.ev_correct, 3);
  EXPECT_EQ(m.ward.returns, 5);

  // A second recording is added on: truth 1 1 1 0 0 0, pred 1 1 1 1 1 1. One true change (to 0
  // at 3) never caught up; no switches; 3 more right and 3 more wrong scored samples.
  m.add({1, 1, 1, 0, 0, 0}, {1, 1, 1, 1, 1, 1});
  EXPECT_EQ(m.recordings, 2);
  EXPECT_EQ(m.samples, 20);
  EXPECT_EQ(m.scored, 16);
  EXPECT_DOUBLE_EQ(m.accuracy(), 9.0 / 16);
  EXPECT_EQ(m.true_changes, 3);
  EXPECT_EQ(m.never_caught_up, 1);
  EXPECT_EQ(m.delays.size(), 2u);
  EXPECT_EQ(m.pred_switches, 4);
  EXPECT_NEAR(m.false_switches_per_min(), 2 * 60.0 / 20, 1e-9);
  // class 1 there: g 111000, p 111111 -> TP, FP(O, 3 frames); class 0: FN(D, 3 frames)
  EXPECT_EQ(m.ward.fr_o, 3);
  EXPECT_EQ(m.ward.seg_d, 1);
  EXPECT_EQ(m.ward.fr_d, 3);
  EXPECT_EQ(m.ward.ev_deleted, 1);
  const auto j = m.to_json({"a", "b"});
  EXPECT_EQ(j["delay"]["never_caught_up"].get<int64_t>(), 1);
  EXPECT_EQ(j["switches"]["false"].get<int64_t>(), 2);
}

// Switches during skipped samples: a switch in the gap before a change is the matched one; a
// switch into a class and back during a gap of one run is two false switches.
//   i     0  1  2  3  4  5  6  7  8  9
//   truth 0  0 -1 -1  1  1 -1 -1  1  1
//   pred  0  0  1  1  1  1  0  1  1  1
TEST(StreamMetrics, SwitchesInGaps) {
  StreamMetrics m(2, 2.0);  // 2 Hz: 10 samples = 5 s
  m.add({0, 0, -1, -1, 1, 1, -1, -1, 1, 1}, {0, 0, 1, 1, 1, 1, 0, 1, 1, 1});
  // runs: 0 [0..1], 1 [4..9] (the gap 6-7 skipped). One change; R(1) = [2, 9]; switches at 2
  // (0->1, matched), 6 (1->0), 7 (0->1): the last two are false, both at unlabelled samples.
  EXPECT_EQ(m.true_changes, 1);
  EXPECT_EQ(m.pred_switches, 3);
  EXPECT_EQ(m.matched_switches, 1);
  EXPECT_EQ(m.false_at_unlabelled, 2);
  EXPECT_EQ(m.false_at_scored, 0);
  EXPECT_EQ(m.delays, (std::vector<int64_t>{0}));  // already 1 at the change (sample 4)
  EXPECT_DOUBLE_EQ(m.accuracy(), 1.0);
  EXPECT_NEAR(m.false_switches_per_min(), 2 / (5.0 / 60), 1e-9);
  // Ward: the compacted frames are 0 0 1 1 1 1 against 0 0 1 1 1 1: all correct, one event each
  EXPECT_EQ(m.ward.events, 2);
  EXPECT_EQ(m.ward.ev_correct, 2);
  EXPECT_EQ(m.ward.returns, 2);
  EXPECT_EQ(m.ward.ret_correct, 2);
  EXPECT_EQ(m.sub_frames, 0);
  EXPECT_EQ(m.unlabelled_pred, (std::vector<int64_t>{1, 3, 0}));
}

// Ward et al.'s segment categories and event types on one binary sequence.
//   i  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//   g  0 1 1 1 1 0 0 1 1 0 0 0 1 1 0 0
//   p  0 0 1 0 1 1 1 1 0 0 1 0 0 0 0 1
// segments: TN FN(U) TP FN(F) TP FP(M,2) TP FN(U) TN FP(I) TN FN(D,2) TN FP(I)
// events [1,5) [7,9) [12,14); returns [2,3) [4,8) [10,11) [15,16)
TEST(StreamMetrics, WardSegmentsAndEvents) {
  const WardCounts w = ward_binary(bits("0111100110001100"), bits("0010111100100001"));
  EXPECT_EQ(w.positives, 8);
  EXPECT_EQ(w.negatives, 8);
  EXPECT_EQ(w.seg_tp, 3);
  EXPECT_EQ(w.fr_tp, 3);
  EXPECT_EQ(w.seg_tn, 4);
  EXPECT_EQ(w.fr_tn, 4);
  EXPECT_EQ(w.seg_u, 2);
  EXPECT_EQ(w.fr_u, 2);
  EXPECT_EQ(w.seg_f, 1);
  EXPECT_EQ(w.fr_f, 1);
  EXPECT_EQ(w.seg_m, 1);
  EXPECT_EQ(w.fr_m, 2);
  EXPECT_EQ(w.seg_i, 2);
  EXPECT_EQ(w.fr_i, 2);
  EXPECT_EQ(w.seg_d, 1);
  EXPECT_EQ(w.fr_d, 2);
  EXPECT_EQ(w.seg_o, 0);
  // event 1 is overlapped by returns 1 and 2, return 2 also overlaps event 2: FM; event 2: M;
  // event 3: D. return 1: F' (its one event has two returns); return 2: FM'; returns 3, 4: I'.
  EXPECT_EQ(w.events, 3);
  EXPECT_EQ(w.ev_frag_merged, 1);
  EXPECT_EQ(w.ev_merged, 1);
  EXPECT_EQ(w.ev_deleted, 1);
  EXPECT_EQ(w.ev_correct, 0);
  EXPECT_EQ(w.ev_fragmented, 0);
  EXPECT_EQ(w.returns, 4);
  EXPECT_EQ(w.ret_fragmenting, 1);
  EXPECT_EQ(w.ret_frag_merging, 1);
  EXPECT_EQ(w.ret_inserted, 2);
  EXPECT_EQ(w.ret_correct, 0);
  EXPECT_EQ(w.ret_merging, 0);
}

TEST(StreamMetrics, WardOverfillFragmentMerge) {
  // g 11100, p 01110: FN(U) TP FP(O) TN; one correct event, one correct return
  WardCounts a = ward_binary(bits("11100"), bits("01110"));
  EXPECT_EQ(a.seg_u, 1);
  EXPECT_EQ(a.seg_o, 1);
  EXPECT_EQ(a.fr_o, 1);
  EXPECT_EQ(a.ev_correct, 1);
  EXPECT_EQ(a.ret_correct, 1);
  // g 11111, p 10101: TP FN(F) TP FN(F) TP; one fragmented event, three fragmenting returns
  WardCounts b = ward_binary(bits("11111"), bits("10101"));
  EXPECT_EQ(b.seg_f, 2);
  EXPECT_EQ(b.fr_f, 2);
  EXPECT_EQ(b.ev_fragmented, 1);
  EXPECT_EQ(b.ret_fragmenting, 3);
  // g 101, p 111: TP FP(M) TP; two merged events, one merging return
  WardCounts c = ward_binary(bits("101"), bits("111"));
  EXPECT_EQ(c.seg_m, 1);
  EXPECT_EQ(c.ev_merged, 2);
  EXPECT_EQ(c.ret_merging, 1);
  a += b;
  EXPECT_EQ(a.ev_correct + a.ev_fragmented, 2);
}

TEST(StreamMetrics, RejectsBadInput) {
  StreamMetrics m(2, 50.0);
  EXPECT_THROW(m.add({0, 1}, {0}), std::runtime_error);
  EXPECT_THROW(m.add({0, 1}, {0, 2}), std::runtime_error);  // 2 is not one of the model's classes
  EXPECT_EQ(m.delay_s(0.5), -1.0);                          // no delays yet
}
