// Data: parsers (dirty WISDM lines, .npy, CSV, HAPT labels), windowing, splits, normalisation,
// the dataset file - on small files the tests write.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "data/dataset.h"
#include "data/loaders.h"
#include "data/npy.h"
#include "data/readers.h"

using namespace harvit;
using namespace harvit::data;
namespace fs = std::filesystem;

namespace {

class TmpDir {
 public:
  TmpDir() {
    path_ = fs::temp_directory_path() / ("harvit_data_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TmpDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& content) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::string path(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string npy_bytes(const std::string& descr, const std::string& shape, const void* data, size_t bytes,
                      const std::string& order = "False") {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h.push_back(' ');
  h.push_back('\n');
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(h.size() & 0xff));
  out.push_back(static_cast<char>(h.size() >> 8));
  out += h;
  out.append(static_cast<const char*>(data), bytes);
  return out;
}

// A WISDM v1.1 line at 20 Hz (50 ms = 5e7 ns) for `user`, `act`, sample index i.
std::string wisdm_line(int user, const std::string& act, int64_t i, int64_t t0 = 1000000000) {
  return std::to_string(user) + "," + act + "," + std::to_string(t0 + i * 50000000) + ",0.5," +
         std::to_string(0.01 * i) + ",-1.25;\n";
}

}  // namespace

// ---- .npy ------------------------------------------------------------------------------------

TEST(Npy, ReadsEverySupportedType) {
  const float f[3] = {1.5f, -2.0f, 3.25f};
  const double d[2] = {1e-3, -7.0};
  const int32_t i4[2] = {-5, 7};
  const int64_t i8[2] = {1LL << 40, -3};
  const uint8_t u1[3] = {0, 1, 255};
  auto a = npy_parse(npy_bytes("<f4", "(3,)", f, sizeof f), "f.npy");
  EXPECT_EQ(a.values, (std::vector<double>{1.5, -2.0, 3.25}));
  EXPECT_EQ(npy_parse(npy_bytes("<f8", "(1, 2)", d, sizeof d), "d.npy").values, (std::vector<double>{1e-3, -7.0}));
  EXPECT_EQ(npy_parse(npy_bytes("<i4", "(2,)", i4, sizeof i4), "i.npy").values, (std::vector<double>{-5, 7}));
  EXPECT_EQ(npy_parse(npy_bytes("<i8", "(2,)", i8, sizeof i8), "l.npy").values, (std::vector<double>{double(1LL << 40), -3}));
  auto u = npy_parse(npy_bytes("|u1", "(3,)", u1, sizeof u1), "u.npy");
  EXPECT_EQ(u.values, (std::vector<double>{0, 1, 255}));
  EXPECT_EQ(u.shape, (std::vector<int64_t>{3}));
}

TEST(Npy, RejectsWhatItCannotRead) {
  const float f[4] = {};
  EXPECT_NE(error_of([&] { npy_parse(npy_bytes(">f4", "(4,)", f, sizeof f), "be.npy"); }).find("unsupported .npy dtype '>f4'"), std::string::npos);
  EXPECT_NE(error_of([&] { npy_parse(npy_bytes("<f4", "(2, 2)", f, sizeof f, "True"), "fo.npy"); }).find("Fortran"), std::string::npos);
  EXPECT_NE(error_of([&] { npy_parse(npy_bytes("<f4", "(5,)", f, sizeof f), "tr.npy"); }).find("truncated"), std::string::npos);
  EXPECT_NE(error_of([&] { npy_parse("PK\x03\x04 not npy", "zip.npy"); }).find("zip.npy: not a .npy file"), std::string::npos);
  EXPECT_NE(error_of([&] { npy_parse(npy_bytes("<f4", "(-1,)", f, sizeof f), "neg.npy"); }).find("bad dimension"), std::string::npos);
  std::string cut = npy_bytes("<f4", "(4,)", f, sizeof f).substr(0, 30);
  EXPECT_NE(error_of([&] { npy_parse(cut, "cut.npy"); }).find("cut.npy"), std::string::npos);
}

// ---- WISDM raw -------------------------------------------------------------------------------

TEST(Wisdm, CountsEveryDirtyKindAndKeepsGoodRecords) {
  std::string text;
  for (int i = 0; i < 3; ++i) text += wisdm_line(7, "Walking", i);
  text += "7,Walking,1150000000,0.1,0.2,0.3,;\n";            // trailing comma before ';' -> kept
  text += "7,Walking,1200000000,1,2,3;7,Walking,1250000000,4,5,6;\n";  // two records on a line -> kept
  text += "\n";                                              // empty line (line 6)
  text += "7,Walking,1300000000,1,2\n";                      // too few fields (line 7)
  text += "7,Walking,1300000000,1,2,3,4,5;\n";               // too many fields
  text += "7,Walking,1300000000,1,,3;\n";                    // missing value
  text += "7,Walking,1300000000,1,abc,3;\n";                 // non-numeric
  text += "7,Walking,1300000000,1,nan,3;\n";                 // non-finite
  text += "7,Walking,1300000000,1,1e999,3;\n";               // overflow -> non-finite
  text += "7,Walking,0,1,2,3;\n";                            // zero timestamp (line 13)
  text += "8,Jogging,1300000000,1,2,3";                      // last record without ';' -> kept
  RawData raw;
  parse_wisdm_text(text, "dirty.txt", raw);
  EXPECT_EQ(raw.report.records, 7);
  EXPECT_EQ(raw.report.skipped.at("empty line"), 1);
  EXPECT_EQ(raw.report.skipped.at("too few fields"), 1);
  EXPECT_EQ(raw.report.skipped.at("too many fields"), 1);
  EXPECT_EQ(raw.report.skipped.at("missing value"), 1);
  EXPECT_EQ(raw.report.skipped.at("non-numeric value"), 1);
  EXPECT_EQ(raw.report.skipped.at("non-finite value"), 2);
  EXPECT_EQ(raw.report.skipped.at("zero timestamp"), 1);
  EXPECT_EQ(raw.report.examples.at("too few fields")[0], "dirty.txt:7");
  EXPECT_EQ(raw.report.examples.at("zero timestamp")[0], "dirty.txt:13");
  ASSERT_EQ(raw.streams.size(), 2u);
  EXPECT_EQ(raw.streams[0].subject, 7);
  EXPECT_EQ(raw.streams[0].size(), 6);
  EXPECT_FLOAT_EQ(raw.streams[0].values[3 * 5 + 2], 6.0f);
  EXPECT_EQ(raw.class_names[raw.streams[1].label[0]], "Jogging");
  EXPECT_NE(raw.report.summary().find("dirty.txt:8"), std::string::npos);
}

TEST(Wisdm, UnknownActivitiesAreListed) {
  std::string text = wisdm_line(1, "Walking", 0) + wisdm_line(1, "Cycling", 1) + wisdm_line(1, "Cycling", 2) +
                     wisdm_line(1, "Swimming", 3);
  RawData raw;
  const std::string e = error_of([&] { parse_wisdm_text(text, "u.txt", raw); });
  EXPECT_NE(e.find("'Cycling' x 2 (first at u.txt:2)"), std::string::npos) << e;
  EXPECT_NE(e.find("'Swimming' x 1"), std::string::npos) << e;
}

TEST(Wisdm, Release2019Letters) {
  RawData raw;
  parse_wisdm_text("1600,A,252207666810782,-0.36,8.79,1.05;\n1600,D,252207716770781,0.1,0.2,0.3;\n", "d.txt", raw);
  EXPECT_EQ(raw.name, "wisdm-2019");
  EXPECT_EQ(raw.class_names.size(), 18u);
  EXPECT_EQ(raw.class_names[raw.streams[0].label[1]], "sitting");
  RawData bad;
  EXPECT_NE(error_of([&] { parse_wisdm_text("1600,N,252207666810782,1,2,3;\n", "n.txt", bad); }).find("'N'"), std::string::npos);
}

TEST(Wisdm, FilesErrors) {
  TmpDir d;
  EXPECT_NE(error_of([&] { parse_wisdm_files({d.path("missing.txt")}); }).find("missing.txt: cannot open"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_wisdm_files({d.file("empty.txt", "")}); }).find("empty.txt: file is empty"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_wisdm_files({d.file("junk.txt", "a,b\n\n,,,\n")}); }).find("no valid records"), std::string::npos);
  EXPECT_NE(error_of([&] { list_inputs(d.path("nowhere"), "", ".txt"); }).find("no such file or folder"), std::string::npos);
}

// ---- windowing -------------------------------------------------------------------------------

TEST(Windows, GapsAndLabelChangesStartNewRuns) {
  std::string text;
  for (int i = 0; i < 20; ++i) text += wisdm_line(1, "Walking", i);
  for (int i = 25; i < 45; ++i) text += wisdm_line(1, "Walking", i);  // 5-sample gap (250 ms) > 150 ms
  for (int i = 45; i < 55; ++i) text += wisdm_line(1, "Jogging", i);  // label change
  RawData raw;
  parse_wisdm_text(text, "g.txt", raw);
  WindowOptions wo;
  wo.length = 8;
  wo.stride = 4;
  wo.max_gap_s = 0.15;
  Dataset ds = make_windows(raw, wo);
  // runs: 20 samples -> 4 windows, 20 -> 4, 10 -> 1
  EXPECT_EQ(ds.size(), 9);
  EXPECT_EQ(std::set<int32_t>(ds.run.begin(), ds.run.end()).size(), 3u);
  EXPECT_EQ(ds.pos[3], 3);
  EXPECT_EQ(ds.pos[4], 0);
  EXPECT_EQ(ds.stride, 4);
  // The first window holds samples 0..7 in time order.
  EXPECT_FLOAT_EQ(ds.x[7 * 3 + 1], 0.07f);
  wo.max_gap_s = 1.0;  // the gap is now tolerated: 40 samples -> 9 windows
  EXPECT_EQ(make_windows(raw, wo).size(), 10);
  wo.length = 64;
  EXPECT_NE(error_of([&] { make_windows(raw, wo); }).find("too few samples for one window"), std::string::npos);
}

TEST(Windows, RepeatedAndSlightlyOutOfOrderRecordsAreDroppedNotCuts) {
  // Walking 0..39 with: a repeat of sample 9 after sample 10 (one period back), an exact repeat of
  // sample 20, and sample 29 after 31 (two periods back). Then a step back of 3 periods (cut),
  // a gap (cut), a label change with time going back by one period (a cut, not a drop), another
  // user at the same timestamps (its own stream).
  std::string text;
  for (int i = 0; i < 40; ++i) {
    if (i == 30) continue;
    text += wisdm_line(1, "Walking", i == 31 ? 30 : i == 32 ? 31 : i);
    if (i == 10) text.back() = ' ', text += wisdm_line(1, "Walking", 9);  // two records on one line
    if (i == 20) text += wisdm_line(1, "Walking", 20);
    if (i == 32) text += wisdm_line(1, "Walking", 29);
  }
  for (int i = 36; i < 56; ++i) text += wisdm_line(1, "Walking", i);    // 3 periods back from 39: cut
  for (int i = 70; i < 90; ++i) text += wisdm_line(1, "Walking", i);    // 13-period gap: cut
  for (int i = 89; i < 99; ++i) text += wisdm_line(1, "Jogging", i);    // label change, one back: kept
  for (int i = 0; i < 10; ++i) text += wisdm_line(2, "Walking", i);     // another user
  RawData raw;
  parse_wisdm_text(text, "r.txt", raw);
  EXPECT_EQ(raw.report.skipped.at("repeated or out-of-order record"), 3);
  EXPECT_EQ(raw.report.examples.at("repeated or out-of-order record")[0], "r.txt:11");
  ASSERT_EQ(raw.streams.size(), 2u);
  EXPECT_EQ(raw.streams[0].size(), 39 + 20 + 20 + 10);
  EXPECT_EQ(raw.streams[1].size(), 10);
  WindowOptions wo;
  wo.length = 8;
  wo.stride = 4;
  Dataset ds = make_windows(raw, wo);
  // Runs: 39 samples -> 8 windows, 20 -> 4, 20 -> 4, 10 -> 1, user 2: 10 -> 1.
  EXPECT_EQ(ds.size(), 18);
  EXPECT_EQ(std::set<int32_t>(ds.run.begin(), ds.run.end()).size(), 5u);
  EXPECT_EQ(ds.info["time_cuts"]["step_back"], 1);
  EXPECT_EQ(ds.info["time_cuts"]["gap"], 1);
  // Time-blind: user 1 Walking 79 samples -> 18 windows, Jogging 1, user 2 1.
  EXPECT_EQ(ds.info["windows_if_time_ignored"], 20);
  const std::string sum = time_cut_summary(ds);
  EXPECT_NE(sum.find("1 x gap"), std::string::npos) << sum;
  EXPECT_NE(sum.find("18 windows, 20 if timestamps were ignored (10.0 % fewer)"), std::string::npos) << sum;
  // The kept records are in time order: sample 9's repeat did not enter the first window.
  EXPECT_FLOAT_EQ(ds.x[(2 * 8 + 3) * 3 + 1], 0.11f);  // window 2 starts at 8: sample 8, 9, 10, 11
}

// A WISDM v1.1-style file as the real one is: 3 users x 6 activities x `n` records at 20 Hz, with
// about 1 % of the lines also carrying a repeat of the previous record, 1 % missing a value and
// 1 % empty lines (dirty = true).
static std::string wisdm_v11_like(int n, bool dirty) {
  const char* acts[6] = {"Walking", "Jogging", "Upstairs", "Downstairs", "Sitting", "Standing"};
  std::string text;
  uint64_t h = 12345;
  auto chance = [&](int per_mille) {
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((h >> 33) % 1000) < per_mille;
  };
  int64_t t = 1000000000;
  for (int u = 1; u <= 3; ++u)
    for (const char* a : acts) {
      t += 10'000'000'000;  // 10 s between recordings
      for (int i = 0; i < n; ++i, t += 50'000'000) {
        std::string line = std::to_string(u) + "," + a + "," + std::to_string(t) + "," + std::to_string(0.1 * (i % 7)) +
                           "," + std::to_string(9.8 - 0.01 * (i % 13)) + "," + std::to_string(-0.3 + 0.02 * (i % 5)) + ";";
        if (dirty && i > 0 && chance(10))
          line += std::to_string(u) + "," + a + "," + std::to_string(t - 50'000'000) + ",0.5,9.7,0.1;";
        if (dirty && chance(10)) line = std::to_string(u) + "," + a + "," + std::to_string(t) + ",0.5,,0.1;";
        text += line + "\n";
        if (dirty && chance(10)) text += "\n";
      }
    }
  return text;
}

TEST(Windows, DirtyWisdmFileKeepsItsWindows) {
  RawData clean, dirty;
  parse_wisdm_text(wisdm_v11_like(2400, false), "clean.txt", clean);
  parse_wisdm_text(wisdm_v11_like(2400, true), "dirty.txt", dirty);
  const WindowOptions wo;  // 128 / 64, gap 5 periods
  const Dataset dc = make_windows(clean, wo), dd = make_windows(dirty, wo);
  EXPECT_EQ(dc.size(), 18 * ((2400 - 128) / 64 + 1));
  const int64_t repeats = dirty.report.skipped.at("repeated or out-of-order record");
  EXPECT_GT(repeats, 300);  // ~1 % of 43,200 lines
  EXPECT_GT(dirty.report.skipped.at("missing value"), 300);
  EXPECT_GT(dirty.report.skipped.at("empty line"), 300);
  std::printf("  clean %lld windows, dirty %lld (%lld repeats dropped)\n", (long long)dc.size(), (long long)dd.size(),
              (long long)repeats);
  EXPECT_GE(dd.size(), dc.size() * 95 / 100);
  EXPECT_EQ(dd.info["time_cuts"]["step_back"], 0);
}

TEST(Csv, RepeatedTimesAreDroppedAndCounted) {
  CsvOptions o;
  o.label_col = "act";
  o.time_col = "t";
  o.axis_cols = {"ax"};
  o.rate_hz = 50;  // 20 ms
  RawData raw;
  // 40 repeats 40 (dropped), 20 after 60 steps back one period (dropped), 0 after 80 is 4 periods
  // back (kept: a cut), 100 is a new label after 0.
  parse_csv_text("t,act,ax\n0,a,1\n20,a,2\n40,a,3\n40,a,9\n60,a,4\n20,a,9\n80,a,5\n0,a,6\n100,b,7\n", "c.csv", o, raw);
  EXPECT_EQ(raw.report.records, 7);
  EXPECT_EQ(raw.report.skipped.at("repeated or out-of-order record"), 2);
  EXPECT_EQ(raw.report.examples.at("repeated or out-of-order record")[1], "c.csv:7");
  ASSERT_EQ(raw.streams.size(), 1u);
  EXPECT_EQ(raw.streams[0].values, (std::vector<float>{1, 2, 3, 4, 5, 6, 7}));
  // A bad value in a repeated row is still an error.
  RawData bad;
  EXPECT_NE(error_of([&] { parse_csv_text("t,act,ax\n0,a,1\n0,a,x\n", "d.csv", o, bad); }).find("d.csv:3"),
            std::string::npos);
}

// A synthetic windowed dataset: `subjects` x `runs` runs of `per_run` overlapping windows.
static Dataset synthetic(int subjects, int per_run, int64_t stride = 2, int64_t T = 4) {
  Dataset ds;
  ds.name = "synthetic";
  ds.T = T;
  ds.M = 2;
  ds.class_names = {"a", "b"};
  ds.axis_names = {"u", "v"};
  ds.stride = stride;
  int run = 0;
  for (int s = 0; s < subjects; ++s)
    for (int c = 0; c < 2; ++c, ++run)
      for (int k = 0; k < per_run; ++k) {
        for (int64_t t = 0; t < T; ++t) ds.x.push_back(float(s * 10 + k)), ds.x.push_back(float(c));
        ds.y.push_back(c);
        ds.subject.push_back(100 + s);
        ds.run.push_back(run);
        ds.pos.push_back(k);
        ds.split.push_back(kTrain);
      }
  ds.info = {{"given_split", false}};
  return ds;
}

TEST(Split, ChronoDropsWindowsStraddlingBoundaries) {
  Dataset ds = synthetic(2, 20);  // T = 4, stride 2: neighbours overlap
  SplitOptions o;
  o.kind = "chrono";
  apply_split(ds, o);
  // Per run: 14 train, 2 val, 4 test; the first val and the first test window overlap the
  // previous part's last window and are dropped.
  EXPECT_EQ(ds.count(kTrain), 4 * 14);
  EXPECT_EQ(ds.count(kVal), 4 * 1);
  EXPECT_EQ(ds.count(kTest), 4 * 3);
  EXPECT_EQ(ds.count(kDropped), 4 * 2);
  for (int64_t i = 0; i < ds.size(); ++i)
    for (int64_t j = 0; j < ds.size(); ++j)
      if (ds.run[i] == ds.run[j] && ds.split[i] != ds.split[j] && ds.split[i] != kDropped && ds.split[j] != kDropped) {
        ASSERT_GE(std::abs(ds.pos[i] - ds.pos[j]) * ds.stride, ds.T) << "windows " << i << " and " << j << " overlap";
      }
}

TEST(Split, SubjectSplitHoldsOutWholeSubjectsDeterministically) {
  Dataset a = synthetic(10, 5), b = synthetic(10, 5), c = synthetic(10, 5);
  SplitOptions o;
  o.kind = "subject";
  o.seed = 3;
  apply_split(a, o);
  apply_split(b, o);
  EXPECT_EQ(a.split, b.split);
  o.seed = 4;
  apply_split(c, o);
  EXPECT_NE(a.split, c.split);
  std::map<int32_t, std::set<uint8_t>> parts;
  for (int64_t i = 0; i < a.size(); ++i) parts[a.subject[i]].insert(a.split[i]);
  int test_subjects = 0, val_subjects = 0;
  for (auto& [s, p] : parts) {
    EXPECT_EQ(p.size(), 1u) << "subject " << s << " is in two parts";
    test_subjects += *p.begin() == kTest;
    val_subjects += *p.begin() == kVal;
  }
  EXPECT_EQ(test_subjects, 2);
  EXPECT_EQ(val_subjects, 1);
  Dataset e = synthetic(10, 5);
  o.test_subjects = {100, 105};
  o.val_subjects = {101};
  apply_split(e, o);
  for (int64_t i = 0; i < e.size(); ++i)
    EXPECT_EQ(e.split[i], e.subject[i] == 100 || e.subject[i] == 105 ? kTest : e.subject[i] == 101 ? kVal : kTrain);
  Dataset f = synthetic(10, 5);
  o.test_subjects = {999};
  EXPECT_NE(error_of([&] { apply_split(f, o); }).find("test subject 999 is not in the data"), std::string::npos);
}

TEST(Split, LosoAndEmptyParts) {
  Dataset ds = synthetic(4, 3);
  SplitOptions o;
  o.kind = "loso";
  o.fold = 2;
  apply_split(ds, o);
  for (int64_t i = 0; i < ds.size(); ++i)
    if (ds.subject[i] == 102) {
      EXPECT_EQ(ds.split[i], kTest);
    } else {
      EXPECT_NE(ds.split[i], kTest);
    }
  Dataset one = synthetic(1, 3);
  o.fold = 0;
  EXPECT_NE(error_of([&] { apply_split(one, o); }).find("leaves the train part empty"), std::string::npos);
  Dataset two = synthetic(2, 3);
  o.fold = 7;
  EXPECT_NE(error_of([&] { apply_split(two, o); }).find("fold 7"), std::string::npos);
  Dataset g = synthetic(3, 3);
  o.kind = "given";
  EXPECT_NE(error_of([&] { apply_split(g, o); }).find("no train/test split of its own"), std::string::npos);
}

TEST(Split, GivenCarvesValidationBySubjectWhenWindowsOverlap) {
  Dataset ds = synthetic(6, 4);
  ds.info["given_split"] = true;
  for (int64_t i = 0; i < ds.size(); ++i) ds.split[i] = ds.subject[i] >= 104 ? kTest : kTrain;
  SplitOptions o;
  o.kind = "given";
  o.val_fraction = 0.25;
  apply_split(ds, o);
  std::set<int32_t> val_subjects;
  for (int64_t i = 0; i < ds.size(); ++i)
    if (ds.split[i] == kVal) val_subjects.insert(ds.subject[i]);
  EXPECT_EQ(val_subjects.size(), 1u);
  for (int64_t i = 0; i < ds.size(); ++i)
    if (val_subjects.count(ds.subject[i])) {
      EXPECT_EQ(ds.split[i], kVal);
    }
  EXPECT_EQ(ds.info["split"]["val_by"], "subject");
}

TEST(Normalize, FittedOnTrainOnly) {
  Dataset ds = synthetic(4, 3, 0);
  SplitOptions o;
  o.kind = "subject";
  o.test_subjects = {103};
  o.val_subjects = {102};
  apply_split(ds, o);
  // Make the test windows extreme: the statistics must not move.
  Dataset ds2 = ds;
  for (int64_t i = 0; i < ds2.size(); ++i)
    if (ds2.split[i] == kTest)
      for (int64_t k = 0; k < ds2.T * ds2.M; ++k) ds2.x[i * ds2.T * ds2.M + k] = 1e6f;
  fit_normalize(ds);
  fit_normalize(ds2);
  EXPECT_EQ(ds.mean, ds2.mean);
  EXPECT_EQ(ds.std, ds2.std);
  // Train windows now have mean 0 and std 1 per axis.
  double s = 0, sq = 0;
  int n = 0;
  for (int64_t i = 0; i < ds.size(); ++i)
    if (ds.split[i] == kTrain)
      for (int64_t t = 0; t < ds.T; ++t) {
        const float v = ds.x[(i * ds.T + t) * ds.M];
        s += v, sq += v * v, ++n;
      }
  EXPECT_NEAR(s / n, 0.0, 1e-5);
  EXPECT_NEAR(sq / n, 1.0, 1e-4);
}

// ---- dataset file ----------------------------------------------------------------------------

TEST(DatasetFile, RoundTripAndErrors) {
  TmpDir d;
  Dataset ds = synthetic(3, 20);
  SplitOptions o;
  o.kind = "chrono";
  apply_split(ds, o);
  fit_normalize(ds);
  const std::string p = d.path("ds.bin");
  save_dataset(p, ds);
  Dataset r = load_dataset(p);
  EXPECT_EQ(r.x, ds.x);
  EXPECT_EQ(r.y, ds.y);
  EXPECT_EQ(r.split, ds.split);
  EXPECT_EQ(r.mean, ds.mean);
  EXPECT_EQ(r.info, ds.info);
  std::ifstream in(p, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  d.file("cut.bin", bytes.substr(0, bytes.size() - 5));
  EXPECT_NE(error_of([&] { load_dataset(d.path("cut.bin")); }).find("truncated"), std::string::npos);
  d.file("magic.bin", "XXXXXXXX" + bytes.substr(8));
  EXPECT_NE(error_of([&] { load_dataset(d.path("magic.bin")); }).find("bad magic"), std::string::npos);
  std::string v2 = bytes;
  v2[8] = 9;
  d.file("ver.bin", v2);
  EXPECT_NE(error_of([&] { load_dataset(d.path("ver.bin")); }).find("version 9"), std::string::npos);
  d.file("extra.bin", bytes + "zz");
  EXPECT_NE(error_of([&] { load_dataset(d.path("extra.bin")); }).find("unexpected bytes"), std::string::npos);
  // No temporary file remains.
  for (auto& e : fs::directory_iterator(d.path(""))) EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos);
}

// ---- CSV -------------------------------------------------------------------------------------

TEST(Csv, ParsesAndReportsBadRows) {
  CsvOptions o;
  o.subject_col = "user";
  o.label_col = "act";
  o.time_col = "t";
  o.axis_cols = {"ax", "ay"};
  RawData raw;
  parse_csv_text("t,user,act,ax,ay\n0,1,walk,0.5,1\n20,1,walk,0.6,2\n40,2,sit,0.7,3\n", "a.csv", o, raw);
  EXPECT_EQ(raw.report.records, 3);
  EXPECT_EQ(raw.streams.size(), 2u);
  EXPECT_EQ(raw.streams[0].time_ns[1], 20000000);
  auto err = [&](const std::string& text) {
    RawData r;
    return error_of([&] { parse_csv_text(text, "b.csv", o, r); });
  };
  EXPECT_NE(err("t,user,act,ax,ay\n0,1,walk,0.5\n").find("b.csv:2: 4 columns, the header has 5"), std::string::npos);
  EXPECT_NE(err("t,user,act,ax\n").find("no column named 'ay'"), std::string::npos);
  EXPECT_NE(err("t,user,act,ax,ay\n0,1,walk,x,1\n").find("b.csv:2: 'x' in column 'ax' is not a number"), std::string::npos);
  EXPECT_NE(err("t,user,act,ax,ay\n0,1,walk,inf,1\n").find("non-finite"), std::string::npos);
  EXPECT_NE(err("t,user,act,ax,ay\n0,u1,walk,1,1\n").find("subject 'u1'"), std::string::npos);
  EXPECT_NE(err("t,user,act,ax,ay\n").find("no data rows"), std::string::npos);
  EXPECT_NE(err("t,user,act,ax,ay\n-1e300,1,walk,1,1\n").find("b.csv:2: time '-1e300' is out of range"), std::string::npos);
  EXPECT_NE(err("").find("no header"), std::string::npos);
}

// ---- HAPT ------------------------------------------------------------------------------------

TEST(Hapt, LabelsParseAndPointInsideTheirFiles) {
  TmpDir d;
  std::string acc, gyro;
  for (int i = 0; i < 300; ++i) acc += "0.1 0.2 0.3\n", gyro += "1 2 3\n";
  d.file("acc_exp01_user05.txt", acc);
  d.file("gyro_exp01_user05.txt", gyro);
  d.file("labels.txt", "1 5 1 1 100\n1 5 7 101 150\n1 5 4 151 300\n");
  RawData raw = load_hapt(d.path(""));
  ASSERT_EQ(raw.streams.size(), 1u);
  EXPECT_EQ(raw.streams[0].subject, 5);
  EXPECT_EQ(raw.streams[0].label[0], 0);
  EXPECT_EQ(raw.streams[0].label[120], -1);  // a transition, excluded by default
  EXPECT_EQ(raw.streams[0].label[299], 3);
  EXPECT_FLOAT_EQ(raw.streams[0].values[5], 3.0f);
  EXPECT_EQ(load_hapt(d.path(""), true).streams[0].label[120], 6);
  d.file("labels.txt", "1 5 1 1 100\n1 5 4 151 301\n");
  EXPECT_NE(error_of([&] { load_hapt(d.path("")); }).find("labels.txt:2: segment 151..301 points past the end"), std::string::npos);
  d.file("labels.txt", "1 5 1 1 100\n2 5 1 1 10\n");
  EXPECT_NE(error_of([&] { load_hapt(d.path("")); }).find("labels.txt:2: refers to experiment 2"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_hapt_labels("1 5 1 1\n", "l.txt"); }).find("l.txt:1: 4 fields"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_hapt_labels("1 5 13 1 5\n", "l.txt"); }).find("outside 1..12"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_hapt_labels("1 5 1 9 5\n", "l.txt"); }).find("empty"), std::string::npos);
  d.file("gyro_exp01_user05.txt", gyro.substr(0, gyro.size() - 6));
  d.file("labels.txt", "1 5 1 1 100\n");
  EXPECT_NE(error_of([&] { load_hapt(d.path("")); }).find("299 rows"), std::string::npos);
  d.file("gyro_exp01_user05.txt", "1 2\n");
  EXPECT_NE(error_of([&] { load_hapt(d.path("")); }).find("gyro_exp01_user05.txt:1: 2 values, expected 3"), std::string::npos);
}

// data/readers.h: the prepare/predict dispatch by name, format detection, the --csv-* settings.
TEST(DataReaders, DetectsTheRecordingFormat) {
  TmpDir d;
  fs::create_directories(d.path("hapt"));
  d.file("hapt/labels.txt", "");
  fs::create_directories(d.path("hapt2/RawData"));
  fs::create_directories(d.path("plain"));
  EXPECT_EQ(detect_recording_format(d.path("hapt")), "hapt");
  EXPECT_EQ(detect_recording_format(d.path("hapt2")), "hapt");
  EXPECT_EQ(detect_recording_format(d.path("rec.csv")), "csv");
  EXPECT_EQ(detect_recording_format(d.path("plain")), "wisdm");
  EXPECT_EQ(detect_recording_format(d.path("raw.txt")), "wisdm");
}

TEST(DataReaders, CsvArgsAreChecked) {
  CsvArgs a;
  a.subject = "user", a.label = "act", a.axes = "ax,,ay", a.time_unit = "s", a.delimiter = ";";
  const CsvOptions o = a.options();
  EXPECT_EQ(o.axis_cols, (std::vector<std::string>{"ax", "ay"}));
  EXPECT_EQ(o.time_scale_ns, 1e9);
  EXPECT_EQ(o.delimiter, ';');
  EXPECT_EQ(o.label_col, "act");
  a.time_unit = "min";
  EXPECT_NE(error_of([&] { a.options(); }).find("--csv-time-unit must be s, ms, us or ns"), std::string::npos);
  a.time_unit = "ms", a.delimiter = "||";
  EXPECT_NE(error_of([&] { a.options(); }).find("--csv-delimiter must be one character"), std::string::npos);
}

TEST(DataReaders, ReadDatasetCutsRecordingsAndReports) {
  TmpDir d;
  std::string text = "user,t,ax,ay,act\n";
  for (int i = 0; i < 40; ++i) text += "1," + std::to_string(i * 20) + "," + std::to_string(i % 5) + ",1," + (i < 20 ? "walk" : "sit") + "\n";
  text += "2,0,x,1,walk\n";  // a bad row fails the CSV reader
  const std::string bad = d.file("bad.csv", text);
  text.resize(text.size() - std::string("2,0,x,1,walk\n").size());
  const std::string good = d.file("rec.csv", text);
  ReadOptions ro;
  ro.csv.subject = "user", ro.csv.time = "t", ro.csv.axes = "ax,ay";
  ro.windows.length = 8, ro.windows.stride = 4;
  EXPECT_NE(error_of([&] { read_dataset("csv", good, ro); }).find("needs --csv-label"), std::string::npos);
  ro.csv.label = "act";
  std::vector<std::string> notes;
  const Dataset ds = read_dataset("csv", good, ro, [&](const std::string& n) { notes.push_back(n); });
  EXPECT_EQ(ds.M, 2);
  EXPECT_EQ(ds.T, 8);
  EXPECT_EQ(ds.size(), 2 * ((20 - 8) / 4 + 1));  // two runs of 20 samples
  EXPECT_EQ(notes.size(), 2u);                   // the parse report, then the time-cut summary
  EXPECT_NE(error_of([&] { read_dataset("csv", bad, ro); }).find("bad.csv:42"), std::string::npos);
  EXPECT_NE(error_of([&] { read_dataset("parquet", good, ro); }).find("unknown --dataset 'parquet' (wisdm, wisdm-npy, uci-har, hapt, csv)"),
            std::string::npos);
  // Recordings: the same reader as predict's, the label column optional there.
  CsvArgs c = ro.csv;
  c.label.clear();
  const RawData raw = read_recordings("csv", good, c, true);
  EXPECT_EQ(raw.streams.size(), 1u);
  EXPECT_EQ(raw.streams[0].size(), 40);
  EXPECT_NE(error_of([&] { read_recordings("auto", good, c, true); }).find("--format must be auto, wisdm, hapt or csv"),
            std::string::npos);
}
