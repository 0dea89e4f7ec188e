// The C API (include/harvit/harvit.h): status codes and messages for a missing file, a malformed
// checkpoint, bad options and NULL handles and arguments (per handle and per thread), nothing
// thrown across the boundary (out of memory included), and a C-API stream that gives exactly the
// decisions of deploy::StreamRecognizer on the same samples, through the queue and the callback.
#include "harvit/harvit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "deploy/stream.h"
#include "fixture_util.h"
#include "nn/checkpoint.h"
#include "nn/vit.h"

using namespace harvit;
namespace fs = std::filesystem;

namespace {

const std::vector<float> kMean = {9.0f, -4.0f, 2.5f}, kStd = {3.0f, 0.5f, 6.0f};

struct CApiTest : ::testing::Test {
  static inline fs::path dir;
  static inline std::string ckpt;
  static void SetUpTestSuite() {
    dir = fs::temp_directory_path() / ("harvit_c_api_" + std::to_string(::getpid()));
    fs::create_directories(dir);
    nn::VitConfig c;
    c.T = 32; c.M = 3; c.C = 4; c.P = 4; c.D = 32; c.H = 2; c.A = 16; c.L = 2; c.hidden = 64;
    nn::Vit m(c);
    test::fixture_params(m, 7);
    nn::CheckpointMeta meta;
    meta.class_names = {"Walking", "Jogging", "Sitting", "Standing"};
    meta.normalization = {{"mean", kMean}, {"std", kStd}, {"axes", {"ax", "ay", "az"}}};
    ckpt = (dir / "vit.safetensors").string();
    nn::save_checkpoint(ckpt, m, meta);
  }
  static void TearDownTestSuite() { fs::remove_all(dir); }

  // n samples (n, 3) in sensor units whose pattern changes every 40 samples, and 20 Hz times with
  // one 2 s gap.
  static std::vector<float> samples(int64_t n, uint64_t seed) {
    Rng rng(seed);
    std::vector<float> x;
    for (int64_t t = 0; t < n; ++t) {
      const float f = 0.2f + 0.15f * static_cast<float>((t / 40) % 3);
      for (int m = 0; m < 3; ++m) x.push_back(kMean[m] + kStd[m] * (std::sin(f * t + m) + 0.3f * rng.normal()));
    }
    return x;
  }
  static std::vector<int64_t> times(int64_t n) {
    std::vector<int64_t> t;
    for (int64_t i = 0; i < n; ++i) t.push_back(1'000'000'000LL + i * 50'000'000LL + (i >= 150 ? 2'000'000'000LL : 0));
    return t;
  }
};

std::string msg(const harvit_stream* h = nullptr) { return harvit_error_message(h); }

TEST_F(CApiTest, VersionAndStatusStrings) {
  EXPECT_STREQ(harvit_version(), HARVIT_VERSION_STRING);
  EXPECT_STREQ(harvit_version(), HARVIT_PROJECT_VERSION);  // the CMake project's VERSION
  std::vector<std::string> seen;
  for (int s = HARVIT_OK; s <= HARVIT_ERROR_INTERNAL; ++s) {
    const std::string str = harvit_status_string(s);
    EXPECT_FALSE(str.empty());
    EXPECT_EQ(std::count(seen.begin(), seen.end(), str), 0) << str;
    seen.push_back(str);
  }
  EXPECT_STREQ(harvit_status_string(HARVIT_OK), "ok");
  EXPECT_STREQ(harvit_status_string(99), "unknown status code");
}

TEST_F(CApiTest, MissingFile) {
  harvit_stream* h = reinterpret_cast<harvit_stream*>(0x1);
  const std::string path = (dir / "no_such.safetensors").string();
  EXPECT_EQ(harvit_open(path.c_str(), nullptr, &h), HARVIT_ERROR_FILE);
  EXPECT_EQ(h, nullptr);
  EXPECT_NE(msg().find(path + ": cannot open (No such file"), std::string::npos) << msg();
}

TEST_F(CApiTest, MalformedCheckpoint) {
  const std::string path = (dir / "garbage.safetensors").string();
  std::ofstream(path) << "this is not a checkpoint";
  harvit_stream* h = nullptr;
  EXPECT_EQ(harvit_open(path.c_str(), nullptr, &h), HARVIT_ERROR_MODEL);
  EXPECT_EQ(h, nullptr);
  EXPECT_NE(msg().find("garbage.safetensors"), std::string::npos) << msg();
}

TEST_F(CApiTest, BadOptions) {
  struct Case {
    void (*set)(harvit_options&);
    const char* says;
  };
  const Case cases[] = {
      {[](harvit_options& o) { o.smooth = 0; }, "smooth must be at least 1"},
      {[](harvit_options& o) { o.smooth = 3, o.votes = 4; }, "votes must be between 1 and smooth (3)"},
      {[](harvit_options& o) { o.hop = -1; }, "hop must be positive"},
      {[](harvit_options& o) { o.hysteresis = 0; }, "hysteresis must be at least 1"},
      {[](harvit_options& o) { o.min_confidence = 1.5f; }, "min_confidence must be in [0, 1]"},
      {[](harvit_options& o) { o.min_confidence = std::nanf(""); }, "min_confidence is NaN"},
      {[](harvit_options& o) { o.max_gap_ns = -5; }, "max_gap_ns must be >= 0"},
      {[](harvit_options& o) { o.queue = 0; }, "queue must hold at least 1"},
      {[](harvit_options& o) { o.threads = 0; }, "threads must be at least 1"},
      {[](harvit_options& o) { o.precision = "bf16"; }, "streaming runs fp32 or int8, not \"bf16\""},
      {[](harvit_options& o) { o.precision = "fp64"; }, "streaming runs fp32 or int8, not \"fp64\""},
      {[](harvit_options& o) { o.precision = nullptr; }, "options.precision is NULL"},
      {[](harvit_options& o) { o.method = 7; }, "options.method 7 is not"},
  };
  for (const Case& c : cases) {
    harvit_options o;
    ASSERT_EQ(harvit_options_init(&o), HARVIT_OK);
    c.set(o);
    harvit_stream* h = nullptr;
    EXPECT_EQ(harvit_open(ckpt.c_str(), &o, &h), HARVIT_ERROR_OPTIONS) << c.says;
    EXPECT_EQ(h, nullptr);
    EXPECT_NE(msg().find(c.says), std::string::npos) << "message: " << msg() << "\nexpected: " << c.says;
    // options are checked before the file is read
    EXPECT_EQ(harvit_open("/no/such/file", &o, &h), HARVIT_ERROR_OPTIONS) << c.says;
  }
}

TEST_F(CApiTest, NullArguments) {
  harvit_stream* h = nullptr;
  harvit_options o;
  EXPECT_EQ(harvit_options_init(nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(), "harvit_options_init: options is NULL");
  EXPECT_EQ(harvit_open(nullptr, nullptr, &h), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(), "harvit_open: checkpoint is NULL");
  EXPECT_EQ(harvit_open(ckpt.c_str(), nullptr, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(), "harvit_open: out is NULL");
  harvit_decision d;
  int got = 0;
  int64_t n = 0;
  const char* name = nullptr;
  float x[3] = {0, 0, 0};
  EXPECT_EQ(harvit_push(nullptr, x, 1, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(), "harvit_push: handle is NULL");
  EXPECT_EQ(harvit_next(nullptr, &d, &got), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_reset(nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_set_callback(nullptr, nullptr, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_classes(nullptr, &n), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_window(nullptr, &n), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_axes(nullptr, &n), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_hop(nullptr, &n), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_samples(nullptr, &n), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_dropped(nullptr, &n), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_class_name(nullptr, 0, &name), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_axis_name(nullptr, 0, &name), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(), "harvit_axis_name: handle is NULL");
  EXPECT_EQ(harvit_close(nullptr), HARVIT_OK);  // like free(NULL)

  ASSERT_EQ(harvit_options_init(&o), HARVIT_OK);
  ASSERT_EQ(harvit_open(ckpt.c_str(), &o, &h), HARVIT_OK) << msg();
  EXPECT_STREQ(harvit_error_message(h), "");  // no failure on this handle yet
  EXPECT_EQ(harvit_push(h, nullptr, 2, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(h), "harvit_push: samples is NULL");
  EXPECT_EQ(harvit_push(h, x, -1, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(h), "harvit_push: n = -1 is negative");
  EXPECT_EQ(harvit_push(h, nullptr, 0, nullptr), HARVIT_OK);  // nothing to read
  EXPECT_EQ(harvit_next(h, nullptr, &got), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_next(h, &d, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(h), "harvit_next: got is NULL");
  EXPECT_EQ(harvit_classes(h, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_class_name(h, 4, &name), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(h), "harvit_class_name: index 4 is outside 0..3");
  EXPECT_EQ(harvit_axis_name(h, -1, &name), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(harvit_axis_name(h, 0, nullptr), HARVIT_ERROR_ARGUMENT);
  // the handle keeps its own last message; the thread's is the latest of any
  harvit_stream* h2 = nullptr;
  ASSERT_EQ(harvit_open(ckpt.c_str(), nullptr, &h2), HARVIT_OK) << msg();
  EXPECT_EQ(harvit_push(h2, x, -7, nullptr), HARVIT_ERROR_ARGUMENT);
  EXPECT_EQ(msg(h), "harvit_axis_name: name is NULL");
  EXPECT_EQ(msg(h2), "harvit_push: n = -7 is negative");
  EXPECT_EQ(msg(), "harvit_push: n = -7 is negative");
  // another thread's failures leave this thread's message alone
  std::string other;
  std::thread([&] {
    harvit_stream* t = nullptr;
    EXPECT_EQ(harvit_open("/no/such/file.safetensors", nullptr, &t), HARVIT_ERROR_FILE);
    other = harvit_error_message(nullptr);
  }).join();
  EXPECT_NE(other.find("/no/such/file.safetensors: cannot open"), std::string::npos) << other;
  EXPECT_EQ(msg(), "harvit_push: n = -7 is negative");
  EXPECT_EQ(harvit_close(h), HARVIT_OK);
  EXPECT_EQ(harvit_close(h2), HARVIT_OK);
}

TEST_F(CApiTest, OutOfMemoryIsAStatus) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reports (and stops at) an allocation this large instead of failing it";
#else
  harvit_options o;
  harvit_options_init(&o);
  o.queue = 100'000'000'000'000LL;  // 10^14 queued decisions: petabytes
  harvit_stream* h = nullptr;
  EXPECT_EQ(harvit_open(ckpt.c_str(), &o, &h), HARVIT_ERROR_MEMORY);
  EXPECT_EQ(h, nullptr);
  EXPECT_EQ(msg(), "out of memory");
#endif
}

void expect_same(const harvit_decision& c, const deploy::Decision& d, int64_t C, const std::string& where) {
  EXPECT_EQ(c.end, d.end) << where;
  EXPECT_EQ(c.time_ns, d.time_ns) << where;
  EXPECT_EQ(c.label, d.label) << where;
  EXPECT_EQ(c.confidence, d.confidence) << where;
  EXPECT_EQ(c.hop_label, d.hop_label) << where;
  EXPECT_EQ(c.hop_confidence, d.hop_confidence) << where;
  EXPECT_EQ(c.changed, d.changed ? 1 : 0) << where;
  for (int64_t k = 0; k < C; ++k) EXPECT_EQ(c.probs[k], d.probs[k]) << where << " class " << k;
}

TEST_F(CApiTest, SameDecisionsAsStreamRecognizer) {
  for (const char* precision : {"fp32", "int8"}) {
    for (int method : {HARVIT_SMOOTH_MEAN, HARVIT_SMOOTH_VOTE}) {
      SCOPED_TRACE(std::string(precision) + (method == HARVIT_SMOOTH_VOTE ? " vote" : " mean"));
      harvit_options o;
      harvit_options_init(&o);
      o.precision = precision;
      o.hop = 6;
      o.smooth = 3;
      o.method = method;
      o.hysteresis = 2;
      o.max_gap_ns = 500'000'000;
      deploy::StreamOptions so;
      so.precision = precision;
      so.hop = 6;
      so.smooth = 3;
      so.method = method == HARVIT_SMOOTH_VOTE ? deploy::Smoothing::Vote : deploy::Smoothing::Mean;
      so.hysteresis = 2;
      so.max_gap_ns = 500'000'000;
      deploy::StreamRecognizer ref(ckpt, so);
      harvit_stream* h = nullptr;
      ASSERT_EQ(harvit_open(ckpt.c_str(), &o, &h), HARVIT_OK) << msg();
      int64_t v = 0;
      const char* name = nullptr;
      harvit_classes(h, &v);
      EXPECT_EQ(v, ref.classes());
      harvit_window(h, &v);
      EXPECT_EQ(v, ref.window());
      harvit_axes(h, &v);
      EXPECT_EQ(v, ref.axes());
      harvit_hop(h, &v);
      EXPECT_EQ(v, 6);
      for (int64_t k = 0; k < ref.classes(); ++k) {
        EXPECT_EQ(harvit_class_name(h, k, &name), HARVIT_OK);
        EXPECT_EQ(name, ref.class_names()[k]);
      }
      EXPECT_EQ(harvit_axis_name(h, 2, &name), HARVIT_OK);
      EXPECT_STREQ(name, "az");

      const int64_t N = 400;
      const auto x = samples(N, 5);
      const auto t = times(N);
      // the same samples in uneven blocks on both sides; decisions compared as they come
      int64_t made = 0, i = 0;
      for (int64_t block : {1, 7, 30, 2, 100, 13, 64, 183}) {
        ASSERT_EQ(harvit_push(h, x.data() + i * 3, block, t.data() + i), HARVIT_OK) << msg(h);
        ref.push(x.data() + i * 3, block, t.data() + i);
        i += block;
        deploy::Decision d;
        harvit_decision c;
        int got = 0;
        while (ref.next(d)) {
          ASSERT_EQ(harvit_next(h, &c, &got), HARVIT_OK);
          ASSERT_EQ(got, 1) << "the C API has fewer decisions at sample " << i;
          expect_same(c, d, ref.classes(), "decision " + std::to_string(made));
          ++made;
        }
        ASSERT_EQ(harvit_next(h, &c, &got), HARVIT_OK);
        EXPECT_EQ(got, 0) << "the C API has more decisions at sample " << i;
      }
      ASSERT_EQ(i, N);
      EXPECT_GT(made, 40);
      harvit_samples(h, &v);
      EXPECT_EQ(v, N);
      harvit_decisions(h, &v);
      EXPECT_EQ(v, ref.decisions());
      harvit_gaps(h, &v);
      EXPECT_EQ(v, 1);  // the 2 s gap at sample 150
      harvit_dropped(h, &v);
      EXPECT_EQ(v, 0);
      EXPECT_EQ(harvit_close(h), HARVIT_OK);
    }
  }
}

struct Collected {
  std::vector<harvit_decision> d;
  std::vector<float> probs;
  int64_t C = 0;
};

TEST_F(CApiTest, CallbackResetAndDropped) {
  // the callback gets the decisions the queue would have held, with their probabilities
  const int64_t N = 300;
  const auto x = samples(N, 9);
  harvit_stream *q = nullptr, *cb = nullptr;
  ASSERT_EQ(harvit_open(ckpt.c_str(), nullptr, &q), HARVIT_OK) << msg();
  ASSERT_EQ(harvit_open(ckpt.c_str(), nullptr, &cb), HARVIT_OK) << msg();
  Collected col;
  harvit_classes(cb, &col.C);
  ASSERT_EQ(harvit_set_callback(
                cb,
                [](const harvit_decision* d, void* user) {
                  auto* c = static_cast<Collected*>(user);
                  c->d.push_back(*d);
                  c->probs.insert(c->probs.end(), d->probs, d->probs + c->C);
                },
                &col),
            HARVIT_OK);
  ASSERT_EQ(harvit_push(q, x.data(), N, nullptr), HARVIT_OK);
  ASSERT_EQ(harvit_push(cb, x.data(), N, nullptr), HARVIT_OK);
  harvit_decision d;
  int got = 0;
  size_t k = 0;
  while (harvit_next(q, &d, &got) == HARVIT_OK && got) {
    ASSERT_LT(k, col.d.size());
    EXPECT_EQ(d.end, col.d[k].end);
    EXPECT_EQ(d.label, col.d[k].label);
    EXPECT_EQ(d.time_ns, -1);
    for (int64_t c = 0; c < col.C; ++c) EXPECT_EQ(d.probs[c], col.probs[k * col.C + c]);
    ++k;
  }
  EXPECT_EQ(k, col.d.size());
  EXPECT_EQ(k, static_cast<size_t>((N - 32) / 16 + 1));  // window 32, hop 16 (half a window)
  // with the callback set the queue stays empty
  ASSERT_EQ(harvit_next(cb, &d, &got), HARVIT_OK);
  EXPECT_EQ(got, 0);
  // reset: the window refills before the next decision; the sample count goes on
  ASSERT_EQ(harvit_reset(cb), HARVIT_OK);
  col.d.clear();
  ASSERT_EQ(harvit_push(cb, x.data(), 31, nullptr), HARVIT_OK);
  EXPECT_TRUE(col.d.empty());
  ASSERT_EQ(harvit_push(cb, x.data(), 1, nullptr), HARVIT_OK);
  ASSERT_EQ(col.d.size(), 1u);
  EXPECT_EQ(col.d[0].end, N + 32);
  EXPECT_EQ(col.d[0].changed, 1);
  // a full queue drops the oldest decisions and counts them
  harvit_options o;
  harvit_options_init(&o);
  o.queue = 2;
  harvit_stream* small = nullptr;
  ASSERT_EQ(harvit_open(ckpt.c_str(), &o, &small), HARVIT_OK) << msg();
  ASSERT_EQ(harvit_push(small, x.data(), N, nullptr), HARVIT_OK);
  int64_t dropped = 0;
  harvit_dropped(small, &dropped);
  EXPECT_EQ(dropped, static_cast<int64_t>(k) - 2);
  ASSERT_EQ(harvit_next(small, &d, &got), HARVIT_OK);
  EXPECT_EQ(d.end, 32 + 16 * (static_cast<int64_t>(k) - 2));  // the second-to-last decision
  for (harvit_stream* s : {q, cb, small}) EXPECT_EQ(harvit_close(s), HARVIT_OK);
}

}  // namespace
