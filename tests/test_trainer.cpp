// Trainer: learns a separable toy problem, is deterministic for a seed, and resumes bit for bit
// (at an epoch boundary and in the middle of an epoch).
#include <gtest/gtest.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "fixture_util.h"
#include "nn/checkpoint.h"
#include "nn/cnn.h"
#include "nn/vit.h"
#include "train/recipes.h"
#include "train/report.h"
#include "train/trainer.h"

using namespace harvit;
namespace fs = std::filesystem;

namespace {

// Two classes: a slow sine (class 0) or a fast one (class 1) on axis 0, noise on axis 1.
data::Dataset toy(int n = 192) { return test::toy_sines(n); }

nlohmann::json small() {
  nn::VitConfig c;
  c.P = 4; c.D = 16; c.H = 2; c.A = 8; c.L = 2; c.hidden = 32;
  return c.to_json();
}

std::vector<float> params_of(const std::string& ckpt) {
  auto ck = nn::load_checkpoint(ckpt);
  return {ck.model->params().values(), ck.model->params().values() + ck.model->params().count()};
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("harvit_trainer_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  train::TrainOptions opts(const std::string& sub, int epochs = 2) {
    train::TrainOptions o;
    o.epochs = epochs;
    o.batch = 32;
    o.lr = 2e-3;
    o.seed = 7;
    o.out_dir = (dir_ / sub).string();
    return o;
  }
  fs::path dir_;
};

}  // namespace

TEST_F(TrainerTest, LearnsAToyProblem) {
  auto ds = toy();
  auto o = opts("learn", 8);
  auto r = train::train_model(ds, small(), o);
  ASSERT_EQ(r.history.size(), 8u);
  EXPECT_LT(r.history.back().train_loss, r.history.front().train_loss);
  EXPECT_GE(r.best_val_acc, 0.9);
  EXPECT_TRUE(fs::exists(o.out_dir + "/best.safetensors"));
  EXPECT_TRUE(fs::exists(o.out_dir + "/history.json"));
  auto ck = nn::load_checkpoint(o.out_dir + "/best.safetensors");
  EXPECT_EQ(ck.meta.class_names, ds.class_names);
  EXPECT_EQ(ck.meta.normalization["mean"].get<std::vector<float>>(), ds.mean);
  // The test split is never used for selection: the best epoch is the one with the best val acc.
  double best = -1;
  int best_epoch = -1;
  for (auto& e : r.history)
    if (e.val_acc > best) best = e.val_acc, best_epoch = e.epoch;
  EXPECT_EQ(r.best_epoch, best_epoch);
}

TEST_F(TrainerTest, CnnBaselineLearnsToo) {
  auto ds = toy();
  nn::CnnConfig c;
  c.channels = {8, 16};
  c.kernel = 3;
  auto o = opts("cnn", 8);
  auto r = train::train_model(ds, c.to_json(), o);
  EXPECT_GE(r.best_val_acc, 0.9);
  auto ck = nn::load_checkpoint(o.out_dir + "/best.safetensors");
  EXPECT_EQ(ck.model->kind(), "cnn");
  EXPECT_EQ(ck.model->params().info("convs.1.weight").shape, (harvit::Shape{16, 8, 3}));
}

TEST_F(TrainerTest, SameSeedSameBits) {
  auto ds = toy();
  train::train_model(ds, small(), opts("a"));
  train::train_model(ds, small(), opts("b"));
  EXPECT_EQ(params_of((dir_ / "a/last.safetensors").string()), params_of((dir_ / "b/last.safetensors").string()));
  auto o = opts("c");
  o.seed = 8;
  train::train_model(ds, small(), o);
  EXPECT_NE(params_of((dir_ / "a/last.safetensors").string()), params_of((dir_ / "c/last.safetensors").string()));
}

TEST_F(TrainerTest, ResumeIsBitIdentical) {
  auto ds = toy();
  auto full = train::train_model(ds, small(), opts("full"));
  const auto want = params_of((dir_ / "full/last.safetensors").string());
  const int steps_per_epoch = (static_cast<int>(ds.count(data::kTrain)) + 31) / 32;
  for (int stop_after : {steps_per_epoch, steps_per_epoch + 2}) {  // epoch boundary, mid-epoch
    const std::string sub = "part" + std::to_string(stop_after);
    auto o = opts(sub);
    o.max_steps = stop_after;
    auto part = train::train_model(ds, small(), o);
    EXPECT_TRUE(part.interrupted);
    o.max_steps = 0;
    o.resume = true;
    auto rest = train::train_model(ds, small(), o);
    EXPECT_FALSE(rest.interrupted);
    EXPECT_EQ(params_of((dir_ / sub / "last.safetensors").string()), want) << "stopped after " << stop_after;
    ASSERT_EQ(rest.history.size(), full.history.size());
    for (size_t e = 0; e < full.history.size(); ++e) {
      EXPECT_EQ(rest.history[e].train_loss, full.history[e].train_loss);
      EXPECT_EQ(rest.history[e].val_acc, full.history[e].val_acc);
    }
  }
  // Resuming with other options is refused.
  auto o = opts("full");
  o.resume = true;
  o.lr = 1e-3;
  EXPECT_THROW(train::train_model(ds, small(), o), std::runtime_error);
}

TEST_F(TrainerTest, RecipeOptionsTrainAndResumeBitIdentically) {
  auto ds = toy();
  auto o = opts("recipe");
  o.schedule = "cosine";
  o.warmup_epochs = 0.5;
  o.label_smoothing = 0.1;
  o.class_weights = "balanced";
  o.aug_scale = 0.1;
  o.aug_jitter = 0.05;
  o.aug_shift = 3;
  auto full = train::train_model(ds, small(), o);
  EXPECT_TRUE(std::isfinite(full.history.back().train_loss));
  auto want = params_of(o.out_dir + "/last.safetensors");
  auto p = opts("recipe2");
  p.schedule = o.schedule; p.warmup_epochs = o.warmup_epochs; p.label_smoothing = o.label_smoothing;
  p.class_weights = o.class_weights; p.aug_scale = o.aug_scale; p.aug_jitter = o.aug_jitter; p.aug_shift = o.aug_shift;
  p.max_steps = 7;
  train::train_model(ds, small(), p);
  p.max_steps = 0;
  p.resume = true;
  train::train_model(ds, small(), p);
  EXPECT_EQ(params_of(p.out_dir + "/last.safetensors"), want);
  o.aug_rotate = 10;  // two axes: not xyz triples
  o.out_dir += "_rot";
  EXPECT_THROW(train::train_model(ds, small(), o), std::runtime_error);
  o.aug_rotate = 0;  // together without a rotation: a flag that would do nothing
  o.aug_rotate_together = true;
  try {
    train::train_model(ds, small(), o);
    ADD_FAILURE() << "--aug-rotate-together without --aug-rotate was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--aug-rotate-together needs a rotation"), std::string::npos) << e.what();
  }
}

TEST(Augment, RotationKeepsNormsShiftPermutes) {
  const int64_t T = 16, M = 6;
  std::vector<float> x(T * M);
  Rng r(2);
  for (auto& v : x) v = r.normal();
  train::TrainOptions o;
  o.aug_rotate = 30;
  auto y = x;
  Rng a(5);
  train::augment_windows(y.data(), 1, T, M, o, a);
  for (int64_t t = 0; t < T; ++t)
    for (int g = 0; g < 2; ++g) {
      double n0 = 0, n1 = 0;
      for (int k = 0; k < 3; ++k) n0 += x[t * M + 3 * g + k] * x[t * M + 3 * g + k], n1 += y[t * M + 3 * g + k] * y[t * M + 3 * g + k];
      EXPECT_NEAR(n0, n1, 1e-4);
    }
  EXPECT_NE(x, y);
  train::TrainOptions s;
  s.aug_shift = 4;
  auto z = x;
  Rng b(6);
  train::augment_windows(z.data(), 1, T, M, s, b);
  auto zs = z, xs = x;
  std::sort(zs.begin(), zs.end());
  std::sort(xs.begin(), xs.end());
  EXPECT_EQ(zs, xs);
}

namespace {

struct Batch {
  static constexpr int64_t B = 64, T = 128, M = 6;
  std::vector<float> x;
  Batch() : x(B * T * M) {
    Rng r(12);
    for (auto& v : x) v = 1.0f + r.normal();  // away from zero: ratios are well defined
  }
  std::vector<float> augmented(const train::TrainOptions& o, uint64_t seed) const {
    auto y = x;
    Rng rng(seed);
    train::augment_windows(y.data(), B, T, M, o, rng);
    return y;
  }
};

// Per (window, axis): the least-squares factor f of y ~ f x and the residuals y - f x.
struct ScaleFit {
  std::vector<double> f, resid;
  ScaleFit(const Batch& b, const std::vector<float>& y) {
    for (int64_t w = 0; w < b.B; ++w)
      for (int64_t m = 0; m < b.M; ++m) {
        double xy = 0, xx = 0;
        for (int64_t t = 0; t < b.T; ++t) {
          const int64_t i = (w * b.T + t) * b.M + m;
          xy += double(b.x[i]) * y[i], xx += double(b.x[i]) * b.x[i];
        }
        f.push_back(xy / xx);
        for (int64_t t = 0; t < b.T; ++t) {
          const int64_t i = (w * b.T + t) * b.M + m;
          resid.push_back(y[i] - f.back() * b.x[i]);
        }
      }
  }
  static double sd(const std::vector<double>& v) {
    double m = 0, s = 0;
    for (double e : v) m += e;
    m /= v.size();
    for (double e : v) s += (e - m) * (e - m);
    return std::sqrt(s / (v.size() - 1));
  }
};

}  // namespace

TEST(Augment, OffLeavesBatchesUnchanged) {
  Batch b;
  EXPECT_EQ(b.augmented(train::TrainOptions{}, 1), b.x);
}

// Scaling multiplies each (window, axis) by one factor drawn from U(1 - s, 1 + s): the ratio is
// constant along time, the factors lie in the range and spread over it (mean 1, sd s / sqrt 3).
TEST(Augment, ScalingMultipliesEachWindowAxisByAFactorInRange) {
  Batch b;
  train::TrainOptions o;
  o.aug_scale = 0.2;
  const auto y = b.augmented(o, 3);
  ScaleFit fit(b, y);
  double lo = 10, hi = -10, mean = 0, worst_resid = 0;
  for (double f : fit.f) lo = std::min(lo, f), hi = std::max(hi, f), mean += f;
  mean /= fit.f.size();
  test::ErrTally resid;  // y is exactly f x up to float rounding
  for (size_t k = 0; k < fit.resid.size(); ++k) resid.add(std::fabs(fit.resid[k]), 1e-5);
  worst_resid = resid.worst;
  const double sd = ScaleFit::sd(fit.f);
  std::printf("scale 0.2: %zu factors in [%.4f, %.4f], mean %.4f, sd %.4f (uniform: %.4f); worst |y - f x| %.2g\n",
              fit.f.size(), lo, hi, mean, sd, 0.2 / std::sqrt(3.0), worst_resid);
  EXPECT_EQ(resid.bad, 0);
  EXPECT_GE(lo, 0.8 - 1e-6);
  EXPECT_LE(hi, 1.2 + 1e-6);
  // 384 draws of U(0.8, 1.2): the mean is within 0.02 of 1 (3.4 standard errors), the sd
  // within 15 % of 0.1155, the extremes near the ends. A no-op (f = 1) fails all of these.
  EXPECT_NEAR(mean, 1.0, 0.02);
  EXPECT_NEAR(sd, 0.2 / std::sqrt(3.0), 0.15 * 0.2 / std::sqrt(3.0));
  EXPECT_LT(lo, 0.82);
  EXPECT_GT(hi, 1.18);
  // Different windows and axes get different factors.
  EXPECT_NE(fit.f[0], fit.f[1]);
  EXPECT_NE(fit.f[0], fit.f[b.M]);
}

// Jitter adds independent N(0, sigma^2) noise to every value.
TEST(Augment, JitterAddsNoiseOfTheConfiguredStd) {
  Batch b;
  train::TrainOptions o;
  o.aug_jitter = 0.05;
  const auto y = b.augmented(o, 4);
  std::vector<double> e(y.size());
  double mean = 0, lag1 = 0;
  for (size_t i = 0; i < y.size(); ++i) mean += (e[i] = double(y[i]) - b.x[i]);
  mean /= e.size();
  const double sd = ScaleFit::sd(e);
  for (size_t i = 1; i < e.size(); ++i) lag1 += (e[i] - mean) * (e[i - 1] - mean);
  lag1 /= (e.size() - 1) * sd * sd;
  std::printf("jitter 0.05: %zu values, noise mean %.2e sd %.5f, lag-1 correlation %.3f\n", e.size(), mean, sd, lag1);
  // n = 49152: standard errors of the mean 2.3e-4, of the sd 0.3 %, of the correlation 0.0045.
  EXPECT_NEAR(sd, 0.05, 0.05 * 0.03);
  EXPECT_NEAR(mean, 0.0, 1e-3);
  EXPECT_LT(std::fabs(lag1), 0.03);  // independent draws, not one offset per window
}

// Both: each (window, axis) is f x + noise, f in range, noise of the configured sd.
TEST(Augment, ScalingAndJitterTogether) {
  Batch b;
  train::TrainOptions o;
  o.aug_scale = 0.1;
  o.aug_jitter = 0.05;
  const auto y = b.augmented(o, 5);
  ScaleFit fit(b, y);
  const double sdf = ScaleFit::sd(fit.f), sdr = ScaleFit::sd(fit.resid);
  double lo = 10, hi = -10;
  for (double f : fit.f) lo = std::min(lo, f), hi = std::max(hi, f);
  std::printf("scale 0.1 + jitter 0.05: factors in [%.4f, %.4f] sd %.4f; residual sd %.5f\n", lo, hi, sdf, sdr);
  // The fitted factor carries the noise's error, sd 0.05 / sqrt(sum x^2) ~ 0.003: 0.02 of slack.
  EXPECT_GE(lo, 0.9 - 0.02);
  EXPECT_LE(hi, 1.1 + 0.02);
  EXPECT_NEAR(sdf, 0.1 / std::sqrt(3.0), 0.2 * 0.1 / std::sqrt(3.0));
  EXPECT_NEAR(sdr, 0.05, 0.05 * 0.04);  // a little below 0.05: one degree of freedom per fit
}

// The trainer applies them: the same seed with scaling (or jitter) on ends elsewhere than
// without, while the augmented runs stay deterministic.
TEST_F(TrainerTest, ScalingAndJitterChangeTraining) {
  auto ds = toy();
  train::train_model(ds, small(), opts("plain", 1));
  auto s = opts("scale", 1);
  s.aug_scale = 0.2;
  train::train_model(ds, small(), s);
  auto j = opts("jitter", 1);
  j.aug_jitter = 0.05;
  train::train_model(ds, small(), j);
  auto j2 = opts("jitter2", 1);
  j2.aug_jitter = 0.05;
  train::train_model(ds, small(), j2);
  const auto plain = params_of((dir_ / "plain/last.safetensors").string());
  EXPECT_NE(params_of((dir_ / "scale/last.safetensors").string()), plain);
  EXPECT_NE(params_of((dir_ / "jitter/last.safetensors").string()), plain);
  EXPECT_EQ(params_of((dir_ / "jitter/last.safetensors").string()), params_of((dir_ / "jitter2/last.safetensors").string()));
}

TEST_F(TrainerTest, EvalWritesTableJsonAndPictures) {
  auto ds = toy();
  auto o = opts("eval", 3);
  train::train_model(ds, small(), o);
  train::EvalOptions eo;
  eo.latency_windows = 50;
  auto r = train::evaluate_checkpoint(o.out_dir + "/best.safetensors", ds, eo);
  EXPECT_EQ(r.test.n, ds.count(data::kTest));
  EXPECT_NE(r.text.find("Test accuracy"), std::string::npos);
  EXPECT_GT(r.table["latency"]["batch1_median_ms"].get<double>(), 0.0);
  std::ifstream hin(o.out_dir + "/history.json");
  auto hist = nlohmann::json::parse(hin)["history"];
  const std::string report = train::write_report(o.out_dir, r, hist, "test");
  EXPECT_TRUE(fs::exists(report));
  for (const char* png : {"confusion_matrix.png", "curves.png"}) {
    const std::string p = o.out_dir + "/" + png;
    ASSERT_TRUE(fs::exists(p)) << p;
    std::ifstream in(p, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    ASSERT_GT(bytes.size(), 1000u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << p;
  }
}

// train/recipes.h: what `harvit train --recipe augmented` sets, and that explicit options win.
TEST(TrainerRecipe, AugmentedSetsWhatWasNotGiven) {
  train::TrainOptions seed;
  train::apply_recipe("seed", seed);
  EXPECT_EQ(seed.to_json(), train::TrainOptions{}.to_json());
  train::TrainOptions a;
  train::apply_recipe("augmented", a);
  EXPECT_EQ(a.schedule, "cosine");
  EXPECT_EQ(a.warmup_epochs, 2);
  EXPECT_EQ(a.label_smoothing, 0.1);
  EXPECT_EQ(a.weight_decay, 0.05);
  EXPECT_EQ(a.aug_scale, 0.2);
  EXPECT_EQ(a.aug_jitter, 0.1);
  EXPECT_EQ(a.aug_shift, 32);
  EXPECT_EQ(a.aug_rotate, 15);
  EXPECT_EQ(a.lr, train::TrainOptions{}.lr);  // not part of the recipe
  train::TrainOptions g;
  g.weight_decay = 0.2, g.aug_rotate = 0;
  train::apply_recipe("augmented", g, [](const std::string& o) { return o == "--weight-decay" || o == "--aug-rotate"; });
  EXPECT_EQ(g.weight_decay, 0.2);
  EXPECT_EQ(g.aug_rotate, 0);
  EXPECT_EQ(g.schedule, "cosine");
  EXPECT_THROW(train::apply_recipe("fancy", g), std::runtime_error);
  EXPECT_EQ(train::recipe_names(), (std::vector<std::string>{"seed", "augmented"}));
}

// The training state is two files (weights + state, AdamW moments), each written atomically; a
// crash between the two writes must leave a pair that resumes. Here the crash is staged: a newer
// moments file that no last.safetensors names (another run's) lies beside the saved pair; the
// resume ignores it, ends bit-identical to an uninterrupted run, and the next save removes it. A
// pair as harvit wrote it before the named pairs (last.optim.safetensors) resumes too; a state
// whose moments are gone is a clear error.
TEST_F(TrainerTest, StateFilesStayAPairWhateverTheCrash) {
  auto ds = toy();
  train::train_model(ds, small(), opts("full"));
  const auto want = params_of((dir_ / "full/last.safetensors").string());
  const int spe = (static_cast<int>(ds.count(data::kTrain)) + 31) / 32;
  auto other = opts("other");
  other.seed = 99, other.max_steps = spe + 1;
  train::train_model(ds, small(), other);
  for (const std::string kind : {"stray", "legacy"}) {
    auto o = opts(kind);
    o.max_steps = spe + 1;
    train::train_model(ds, small(), o);
    auto files = train::train_state_files(o.out_dir);
    ASSERT_EQ(files.size(), 2u);
    EXPECT_EQ(files[0], train::last_checkpoint_path(o.out_dir));
    if (kind == "stray") {
      const auto theirs = train::train_state_files(other.out_dir);
      ASSERT_EQ(theirs.size(), 2u);
      fs::copy_file(theirs[1], o.out_dir + "/last.optim.999-00000000deadbeef.safetensors");
    } else {  // rewrite the pair as older harvit wrote it: last.optim.safetensors, no data fingerprint
      auto ck = nn::load_checkpoint(files[0]);
      ck.meta.extra["train_state"].erase("optimizer_file");
      std::string data = ck.meta.extra["train_state"]["data"];
      ASSERT_EQ(std::count(data.begin(), data.end(), ':'), 3) << data;
      data.erase(data.rfind(':'));
      ck.meta.extra["train_state"]["data"] = data;
      nn::save_checkpoint(files[0], *ck.model, ck.meta);
      fs::rename(files[1], o.out_dir + "/last.optim.safetensors");
    }
    o.max_steps = 0, o.resume = true;
    train::train_model(ds, small(), o);
    EXPECT_EQ(params_of(o.out_dir + "/last.safetensors"), want) << kind;
    files = train::train_state_files(o.out_dir);
    ASSERT_EQ(files.size(), 2u) << kind << ": the older moments were not removed";
    EXPECT_NE(fs::path(files[1]).filename(), "last.optim.999-00000000deadbeef.safetensors");
    EXPECT_NE(fs::path(files[1]).filename(), "last.optim.safetensors");
  }
  // An old state (no fingerprint) of other data is still refused by its counts.
  {
    auto ck = nn::load_checkpoint((dir_ / "legacy/last.safetensors").string());
    ck.meta.extra["train_state"]["data"] = ds.name + ":" + std::to_string(ds.size() + 1) + ":" +
                                           std::to_string(ds.count(data::kTrain));
    nn::save_checkpoint((dir_ / "legacy/last.safetensors").string(), *ck.model, ck.meta);
    auto o = opts("legacy");
    o.resume = true;
    try {
      train::train_model(ds, small(), o);
      ADD_FAILURE() << "resumed an old state of other data";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("was trained on other data"), std::string::npos) << e.what();
    }
  }
  // The moments named by last.safetensors are gone: refused, saying what to do.
  const auto files = train::train_state_files((dir_ / "stray").string());
  fs::remove(files[1]);
  auto o = opts("stray");
  o.resume = true;
  try {
    train::train_model(ds, small(), o);
    ADD_FAILURE() << "resumed without its moments";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(files[1] + ": missing (" + files[0] + " names it); remove"), std::string::npos)
        << e.what();
  }
}

// The pieces as another driver (cross-validation, distributed) would call them: a session, then
// train_epoch / validate / record_epoch, no files but the folder; the same bits as train_model.
TEST_F(TrainerTest, PiecesComposeToTheSameRunAsTrainModel) {
  auto ds = toy();
  auto o = opts("whole", 3);
  o.schedule = "cosine", o.warmup_epochs = 1, o.aug_jitter = 0.05, o.aug_shift = 2;
  auto whole = train::train_model(ds, small(), o);
  auto p = o;
  p.out_dir = (dir_ / "pieces").string();
  train::TrainSession s(ds, small(), p);
  int stops = 0;
  bool stopped = false;
  while (s.state.epoch < p.epochs) {
    // Stop once in the middle of the second epoch and carry on in memory: the state holds the place.
    const auto es = train::train_epoch(s, [&] { return !stopped && s.state.epoch == 1 && s.state.step == 2 && (stopped = true); });
    if (!es.complete) {
      ++stops;
      continue;
    }
    const auto v = train::validate(*s.model, ds);
    train::EpochRecord rec;
    rec.epoch = s.state.epoch, rec.lr = es.lr, rec.train_loss = es.loss, rec.val_acc = v.acc;
    train::record_epoch(s.state, rec);
  }
  EXPECT_EQ(stops, 1);
  const std::vector<float> got(s.model->params().values(), s.model->params().values() + s.model->params().count());
  EXPECT_EQ(got, params_of(o.out_dir + "/last.safetensors"));
  ASSERT_EQ(s.state.history.size(), whole.history.size());
  for (size_t e = 0; e < whole.history.size(); ++e) {
    EXPECT_EQ(s.state.history[e].train_loss, whole.history[e].train_loss);
    EXPECT_EQ(s.state.history[e].lr, whole.history[e].lr);
    EXPECT_EQ(s.state.history[e].val_acc, whole.history[e].val_acc);
  }
  EXPECT_EQ(s.state.best_epoch, whole.best_epoch);
  EXPECT_FALSE(fs::exists(p.out_dir + "/last.safetensors"));  // saving is the driver's choice
}

// Ctrl-C while oneDNN computes: its 2.x JIT f32 GEMM kernels run with rsp pointing into a heap
// workspace, so a signal handled on the interrupted stack writes its frame into the heap (oneDNN
// issue 4845); install_interrupt_handler runs the handler on a stack of its own. Here: GEMMs with
// K = 3072 (as a weight gradient) on the main thread while another thread sends it SIGTERM every
// ~5 us, with heap churn that makes glibc check its chunks; in a child process (a death test),
// which must exit normally. Without SA_ONSTACK it aborted ("corrupted size vs. prev_size while
// consolidating") in 3 of 4 runs here (Xeon, AVX-512 kernels), with it in none of 5.
namespace {
[[noreturn]] void gemms_under_signals() {
  train::install_interrupt_handler();
  set_num_threads(1);
  const int64_t M = 16, N = 48, K = 3072;
  std::vector<float> A(K * M, 0.5f), B(K * N, 0.25f), C(M * N);
  const pthread_t main_thread = pthread_self();
  std::atomic<bool> done{false};
  std::thread sender([&] {
    while (!done) {
      pthread_kill(main_thread, SIGTERM);
      std::this_thread::sleep_for(std::chrono::microseconds(5));
    }
  });
  const auto t0 = std::chrono::steady_clock::now();
  int64_t calls = 0;
  while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1500)) {
    gemm('T', 'N', M, N, K, 1.0f, A.data(), M, B.data(), N, 0.0f, C.data(), N);
    // heap churn beside the workspace: glibc checks the neighbouring chunks' headers as it frees
    std::vector<char> a(96 * 1024 + (calls % 7) * 4096, 1), b(3000 + (calls % 5) * 512, 2);
    std::vector<float> c(600 + calls % 300, 3.0f);
    ++calls;
  }
  done = true;
  sender.join();
  const bool right = C[0] == 0.5f * 0.25f * K && train::interrupt_requested();
  std::exit(right && calls > 10 ? 0 : 3);
}
}  // namespace

// Once the handler is installed, a training (its TrainSession, also a cv fold's) has every thread
// of the pool but the caller block SIGINT and SIGTERM (keep_signals_off_the_pool: a second signal
// pending must not land on a worker inside a oneDNN kernel, whose stack pointer may be in the
// heap); in a child process, as the handler and the masks stay.
namespace {
[[noreturn]] void check_pool_signal_masks(const data::Dataset& ds, const nlohmann::json& cfg, train::TrainOptions o) {
  set_num_threads(4);
  train::install_interrupt_handler();
  o.max_steps = 1;
  train::train_model(ds, cfg, o);
  const pthread_t main_thread = pthread_self();
  std::atomic<int> right{0}, threads{0};
#pragma omp parallel num_threads(4)
  {
    sigset_t now;
    pthread_sigmask(SIG_BLOCK, nullptr, &now);
    const bool blocked = sigismember(&now, SIGINT) == 1 && sigismember(&now, SIGTERM) == 1;
    if (blocked != static_cast<bool>(pthread_equal(pthread_self(), main_thread))) ++right;
    ++threads;
  }
  std::exit(right == 4 && threads == 4 ? 0 : 3);
}
}  // namespace

TEST_F(TrainerTest, PoolWorkersLeaveSignalsToTheMainThread) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(check_pool_signal_masks(toy(), small(), opts("signals", 1)), ::testing::ExitedWithCode(0), "");
}

TEST(Interrupt, SignalsDuringOneDnnGemmsLeaveTheHeapIntact) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(gemms_under_signals(), ::testing::ExitedWithCode(0), "");
}
