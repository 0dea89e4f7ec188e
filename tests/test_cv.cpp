// Subject-wise cross-validation (train/cv.h): every subject tested exactly once, the parts of a
// fold disjoint, normalisation fitted without the fold's test (or validation) subjects, the
// aggregate's arithmetic on hand-made fold results, a fold trained with the best-validation
// weights, and a fold result that is reused only by the run it belongs to.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>

#include "core/rng.h"
#include "nn/checkpoint.h"
#include "nn/vit.h"
#include "train/cv.h"
#include "train/trainer.h"

using namespace harvit;
namespace fs = std::filesystem;
using train::FoldResult;
using train::SubjectResult;

namespace {

// Two classes (a slow or a fast sine on axis 0, noise on axis 1) from 10 subjects, each with its
// own offset and gain in raw units, so that statistics over different subjects differ. raw_x keeps
// the raw windows; the dataset is normalised on its own split (subjects 8, 9 test, 7 validation),
// as `harvit prepare` leaves it. Every 13th window is dropped.
struct Toy {
  data::Dataset ds;
  std::vector<float> raw_x;
};
Toy toy(int n = 240) {
  Toy t;
  data::Dataset& ds = t.ds;
  ds.name = "toy";
  ds.T = 16;
  ds.M = 2;
  ds.class_names = {"slow", "fast"};
  ds.axis_names = {"a", "b"};
  Rng rng(3);
  for (int i = 0; i < n; ++i) {
    const int c = i % 2, subj = (i / 2) % 10;
    const float phase = rng.uniform(0, 6.28f), offset = 2.0f * subj, gain = 1.0f + 0.3f * subj;
    for (int tt = 0; tt < ds.T; ++tt) {
      ds.x.push_back(offset + gain * (std::sin(phase + tt * (c ? 1.5f : 0.3f)) + 0.1f * rng.normal()));
      ds.x.push_back(-offset + gain * rng.normal());
    }
    ds.y.push_back(c);
    ds.subject.push_back(subj);
    ds.run.push_back(i);
    ds.pos.push_back(0);
    ds.split.push_back(i % 13 == 5 ? data::kDropped : subj >= 8 ? data::kTest : subj == 7 ? data::kVal : data::kTrain);
  }
  ds.info = {{"given_split", false}};
  t.raw_x = ds.x;
  data::fit_normalize(ds);
  return t;
}

nlohmann::json small_vit() {
  nn::VitConfig c;
  c.P = 4, c.D = 16, c.H = 2, c.A = 8, c.L = 1, c.hidden = 32;
  return c.to_json();
}

std::vector<float> params_of(const std::string& ckpt) {
  const auto ck = nn::load_checkpoint(ckpt);
  return {ck.model->params().values(), ck.model->params().values() + ck.model->params().count()};
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CvFolds, LosoIsOneFoldPerSubjectSorted) {
  const auto folds = train::assign_folds({7, 3, 11, 5}, "loso", 0);
  ASSERT_EQ(folds.size(), 4u);
  EXPECT_EQ(folds[0], std::vector<int32_t>{3});
  EXPECT_EQ(folds[1], std::vector<int32_t>{5});
  EXPECT_EQ(folds[2], std::vector<int32_t>{7});
  EXPECT_EQ(folds[3], std::vector<int32_t>{11});
}

TEST(CvFolds, KFoldsCoverEverySubjectOnceWithBalancedSizes) {
  std::vector<int32_t> subjects;
  for (int s = 0; s < 36; ++s) subjects.push_back(100 + 3 * s);
  for (int K : {2, 5, 6, 7, 36}) {
    for (uint64_t seed : {0, 1}) {
      const auto folds = train::assign_folds(subjects, std::to_string(K), seed);
      ASSERT_EQ(folds.size(), static_cast<size_t>(K));
      std::multiset<int32_t> all;
      size_t lo = subjects.size(), hi = 0;
      for (const auto& f : folds) {
        EXPECT_TRUE(std::is_sorted(f.begin(), f.end()));
        all.insert(f.begin(), f.end());
        lo = std::min(lo, f.size()), hi = std::max(hi, f.size());
      }
      EXPECT_EQ(all, std::multiset<int32_t>(subjects.begin(), subjects.end())) << "K " << K;
      EXPECT_LE(hi - lo, 1u) << "K " << K;
      EXPECT_EQ(folds, train::assign_folds(subjects, std::to_string(K), seed)) << "seeded";
    }
  }
  // The seed changes the grouping; the input order does not matter.
  EXPECT_NE(train::assign_folds(subjects, "6", 0), train::assign_folds(subjects, "6", 1));
  auto reversed = subjects;
  std::reverse(reversed.begin(), reversed.end());
  EXPECT_EQ(train::assign_folds(subjects, "6", 4), train::assign_folds(reversed, "6", 4));
}

TEST(CvFolds, BadFoldCountsAreClearErrors) {
  const std::vector<int32_t> s{1, 2, 3, 4, 5};
  EXPECT_NE(error_of([&] { train::assign_folds(s, "1", 0); }).find("--folds 1: cross-validation needs at least 2 folds"),
            std::string::npos);
  EXPECT_NE(error_of([&] { train::assign_folds(s, "0", 0); }).find("at least 2 folds"), std::string::npos);
  EXPECT_NE(error_of([&] { train::assign_folds(s, "6", 0); }).find("--folds 6: more folds than subjects (the data has 5"),
            std::string::npos);
  EXPECT_NE(error_of([&] { train::assign_folds(s, "five", 0); }).find("--folds must be loso or a number of folds, not 'five'"),
            std::string::npos);
  EXPECT_NE(error_of([&] { train::assign_folds(s, "3x", 0); }).find("not '3x'"), std::string::npos);
  EXPECT_NE(error_of([&] { train::assign_folds({1, 2}, "loso", 0); }).find("3 at least"), std::string::npos);
}

TEST(CvFolds, PartsOfAFoldAreDisjointAndCoverTheSubjects) {
  std::vector<int32_t> subjects;
  for (int s = 0; s < 30; ++s) subjects.push_back(s);
  const auto tests = train::assign_folds(subjects, "loso", 0);
  std::set<std::vector<int32_t>> vals;
  for (size_t k = 0; k < tests.size(); ++k) {
    const auto f = train::make_fold(static_cast<int>(k + 1), subjects, tests[k], 0.15, 0);
    EXPECT_EQ(f.test, tests[k]);
    EXPECT_EQ(f.val.size(), 4u);  // round(0.15 * 29)
    EXPECT_EQ(f.train.size(), 25u);
    std::vector<int32_t> all;
    for (const auto* part : {&f.test, &f.val, &f.train}) all.insert(all.end(), part->begin(), part->end());
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, subjects) << "fold " << k + 1 << ": every subject in exactly one part";
    vals.insert(f.val);
    const auto again = train::make_fold(static_cast<int>(k + 1), subjects, tests[k], 0.15, 0);
    EXPECT_EQ(again.val, f.val) << "seeded";
  }
  EXPECT_GT(vals.size(), 20u) << "each fold draws its own validation subjects";
  // At least one validation subject, and at least one left for training.
  EXPECT_EQ(train::make_fold(1, {1, 2, 3}, {1}, 0.01, 0).val.size(), 1u);
  EXPECT_NE(error_of([] { train::make_fold(1, {1, 2}, {1}, 0.15, 0); }).find("leave none for training"), std::string::npos);
  EXPECT_NE(error_of([] { train::make_fold(1, {1, 2, 3}, {1}, 1.5, 0); }).find("--val-fraction"), std::string::npos);
}

TEST(CvFoldData, SplitBySubjectNormalisedOnTheFoldsTrainingWindowsOnly) {
  const Toy t = toy();
  const auto& ds = t.ds;
  train::FoldSpec f;
  f.fold = 2;
  f.test = {0, 1};
  f.val = {4};
  f.train = {2, 3, 5, 6, 7, 8, 9};
  const data::Dataset d = train::fold_dataset(ds, f);
  ASSERT_EQ(d.size(), ds.size());
  const int64_t W = ds.T * ds.M;
  // The statistics of the raw windows of the training subjects, computed here.
  std::vector<double> s(ds.M, 0), sq(ds.M, 0);
  int64_t n = 0;
  for (int64_t i = 0; i < ds.size(); ++i) {
    const int32_t subj = ds.subject[i];
    const uint8_t want = ds.split[i] == data::kDropped ? data::kDropped
                         : subj <= 1                   ? data::kTest
                         : subj == 4                   ? data::kVal
                                                       : data::kTrain;
    ASSERT_EQ(d.split[i], want) << "window " << i << " of subject " << subj;
    if (want != data::kTrain) continue;
    for (int64_t k = 0; k < W; ++k) s[k % ds.M] += t.raw_x[i * W + k], sq[k % ds.M] += double(t.raw_x[i * W + k]) * t.raw_x[i * W + k];
    n += ds.T;
  }
  for (int64_t m = 0; m < ds.M; ++m) {
    const double mean = s[m] / n, sd = std::sqrt(sq[m] / n - mean * mean);
    EXPECT_NEAR(d.mean[m], mean, 1e-4 * (1 + std::abs(mean))) << "axis " << m;
    EXPECT_NEAR(d.std[m], sd, 1e-4 * sd) << "axis " << m;
    EXPECT_GT(std::abs(d.mean[m] - ds.mean[m]), 0.1) << "the file's statistics (other subjects) were not kept";
  }
  // Every window is its raw values under the fold's statistics.
  double worst = 0;
  for (int64_t i = 0; i < ds.size() * W; ++i) {
    const int64_t m = i % ds.M;
    worst = std::max(worst, (double)std::abs(d.x[i] - (t.raw_x[i] - d.mean[m]) / d.std[m]));
  }
  EXPECT_LT(worst, 1e-4);
  EXPECT_EQ(d.info["split"]["test_subjects"], nlohmann::json({0, 1}));
  // make_folds over the dataset: its 10 subjects (dropped windows do not add any).
  train::CvOptions o;
  o.folds = "5";
  const auto folds = train::make_folds(ds, o);
  ASSERT_EQ(folds.size(), 5u);
  EXPECT_EQ(train::cv_subjects(ds), (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(CvAggregate, MeanSdPooledAndPerSubjectByHand) {
  // Two classes. Fold 1 tests subjects 10 (4/5 right) and 11 (2/3); fold 2 subject 12 (1/4), fold 3
  // subject 13 (3/3).
  const auto subject = [](int32_t s, int fold, std::vector<int64_t> cm) { return SubjectResult{s, fold, std::move(cm)}; };
  FoldResult f1, f2, f3;
  f1.fold = 1, f1.C = 2, f1.subjects = {subject(10, 1, {3, 0, 1, 1}), subject(11, 1, {1, 1, 0, 1})};
  f1.confusion = {4, 1, 1, 2};  // 6/8
  f2.fold = 2, f2.C = 2, f2.subjects = {subject(12, 2, {1, 1, 2, 0})};
  f2.confusion = {1, 1, 2, 0};  // 1/4
  f3.fold = 3, f3.C = 2, f3.subjects = {subject(13, 3, {2, 0, 0, 1})};
  f3.confusion = {2, 0, 0, 1};  // 3/3
  f1.accuracy = 0.75, f2.accuracy = 0.25, f3.accuracy = 1.0;
  f1.macro_f1 = 0.7, f2.macro_f1 = 0.2, f3.macro_f1 = 1.0;
  f1.best_val_acc = 0.5, f2.best_val_acc = 0.7, f3.best_val_acc = 0.9;
  const auto s = train::aggregate({f3, f1, f2}, 4);
  EXPECT_EQ(s.total_folds, 4);
  ASSERT_EQ(s.folds.size(), 3u);
  EXPECT_EQ(s.folds[0].fold, 1);
  EXPECT_EQ(s.folds[2].fold, 3);
  EXPECT_DOUBLE_EQ(s.acc_mean, 2.0 / 3);
  // sample sd of {0.75, 0.25, 1}: deviations 1/12, -5/12, 1/3 -> sum of squares 42/144, / 2
  EXPECT_NEAR(s.acc_sd, std::sqrt(42.0 / 144 / 2), 1e-12);
  EXPECT_NEAR(s.f1_mean, 1.9 / 3, 1e-12);
  const double m = 1.9 / 3;
  EXPECT_NEAR(s.f1_sd, std::sqrt(((0.7 - m) * (0.7 - m) + (0.2 - m) * (0.2 - m) + (1 - m) * (1 - m)) / 2), 1e-12);
  EXPECT_NEAR(s.val_mean, 0.7, 1e-12);
  EXPECT_NEAR(s.val_sd, 0.2, 1e-12);
  EXPECT_EQ(s.pooled.confusion, (std::vector<int64_t>{7, 2, 3, 3}));
  EXPECT_EQ(s.pooled.n, 15);
  EXPECT_DOUBLE_EQ(s.pooled.accuracy, 10.0 / 15);
  // class 0: precision 7/10, recall 7/9; class 1: precision 3/5, recall 3/6
  const double f1_0 = 2 * 0.7 * (7.0 / 9) / (0.7 + 7.0 / 9), f1_1 = 2 * 0.6 * 0.5 / 1.1;
  EXPECT_NEAR(s.pooled.f1_macro, (f1_0 + f1_1) / 2, 1e-12);
  ASSERT_EQ(s.subjects.size(), 4u);  // hardest first
  EXPECT_EQ(s.subjects[0].subject, 12);
  EXPECT_EQ(s.subjects[1].subject, 11);
  EXPECT_EQ(s.subjects[2].subject, 10);
  EXPECT_EQ(s.subjects[3].subject, 13);
  EXPECT_DOUBLE_EQ(s.subjects[1].accuracy(), 2.0 / 3);
  EXPECT_EQ(s.subjects[2].total(), 5);
  EXPECT_NEAR(s.subject_acc_mean, (0.25 + 2.0 / 3 + 0.8 + 1) / 4, 1e-12);
  // One fold: sd 0. A subject in two folds is an error.
  EXPECT_EQ(train::aggregate({f1}, 1).acc_sd, 0.0);
  FoldResult twice = f2;
  twice.fold = 4, twice.subjects[0].subject = 10;
  EXPECT_NE(error_of([&] { train::aggregate({f1, twice}, 4); }).find("subject 10 is tested in two folds"), std::string::npos);
  EXPECT_NE(error_of([] { train::aggregate({}, 3); }).find("no fold results"), std::string::npos);
  // Through JSON and back (the fold result files): the same aggregate.
  std::vector<FoldResult> back;
  for (const auto& f : {f1, f2, f3}) back.push_back(FoldResult::from_json(nlohmann::json::parse(f.to_json().dump())));
  const auto s2 = train::aggregate(back, 4);
  EXPECT_EQ(s2.acc_sd, s.acc_sd);
  EXPECT_EQ(s2.pooled.confusion, s.pooled.confusion);
  EXPECT_EQ(s2.subjects[0].fold, 2);
}

class CvRunFold : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("harvit_cv_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(CvRunFold, TrainsSelectsOnValidationAndTestsWithTheBestWeights) {
  const Toy t = toy();
  train::CvOptions cv;
  cv.folds = "5";
  const auto folds = train::make_folds(t.ds, cv);
  const auto& f = folds[1];
  const data::Dataset d = train::fold_dataset(t.ds, f);
  train::TrainOptions o;
  o.epochs = 3, o.batch = 32, o.lr = 2e-3, o.seed = 5;
  const auto id = train::fold_identity(t.ds, cv, f, small_vit(), o);
  const std::string dir = train::fold_dir(dir_.string(), f.fold);
  EXPECT_EQ(fs::path(dir).filename(), "fold-02");
  std::vector<std::string> lines;
  const FoldResult r = train::run_fold(d, f, small_vit(), o, dir, id, [&](const std::string& l) { lines.push_back(l); });
  EXPECT_EQ(lines.size(), 5u);  // the parts, 3 epochs, the result
  EXPECT_EQ(r.fold, 2);
  EXPECT_EQ(r.test_subjects, f.test);
  EXPECT_EQ(r.test_windows, d.count(data::kTest));
  EXPECT_EQ(r.train_windows, d.count(data::kTrain));
  int64_t total = 0, correct = 0;
  for (const auto& s : r.subjects) total += s.total(), correct += s.correct();
  EXPECT_EQ(total, r.test_windows);
  EXPECT_DOUBLE_EQ(r.accuracy, double(correct) / total);
  EXPECT_GE(r.best_epoch, 1);
  for (const char* file : {"best.safetensors", "history.json", "result.json"})
    EXPECT_TRUE(fs::exists(fs::path(dir) / file)) << file;
  // The test accuracy is that of the best-validation checkpoint.
  auto ck = nn::load_checkpoint(dir + "/best.safetensors");
  EXPECT_EQ(ck.meta.extra["epoch"].get<int>(), r.best_epoch);
  EXPECT_EQ(ck.meta.normalization["mean"].get<std::vector<float>>(), d.mean);
  const auto p = train::predict_split(*ck.model, d, data::kTest);
  int64_t right = 0;
  for (size_t i = 0; i < p.truth.size(); ++i) right += p.truth[i] == p.pred[i];
  EXPECT_DOUBLE_EQ(r.accuracy, double(right) / p.truth.size());

  // Its result is found again by the same run; another run's options are refused, naming the file.
  const auto again = train::load_fold_result(dir, id);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->to_json(), r.to_json());
  auto o2 = o;
  o2.epochs = 4;
  const std::string err = error_of([&] { train::load_fold_result(dir, train::fold_identity(t.ds, cv, f, small_vit(), o2)); });
  EXPECT_NE(err.find(dir + "/result.json: belongs to another cross-validation (options differ)"), std::string::npos) << err;
  EXPECT_FALSE(train::load_fold_result((dir_ / "fold-09").string(), id).has_value());
}

TEST_F(CvRunFold, SameFoldSameSeedSameResult) {
  // What makes --jobs and mpirun give the numbers of one process: a fold's result depends only on
  // the data, the fold and the options.
  const Toy t = toy();
  train::CvOptions cv;
  cv.folds = "loso";
  const auto f = train::make_folds(t.ds, cv)[3];
  train::TrainOptions o;
  o.epochs = 2, o.batch = 32, o.seed = 1;
  const auto id = train::fold_identity(t.ds, cv, f, small_vit(), o);
  const auto a = train::run_fold(train::fold_dataset(t.ds, f), f, small_vit(), o, (dir_ / "a").string(), id);
  const auto b = train::run_fold(train::fold_dataset(t.ds, f), f, small_vit(), o, (dir_ / "b").string(), id);
  EXPECT_EQ(a.confusion, b.confusion);
  EXPECT_EQ(a.best_val_acc, b.best_val_acc);
  EXPECT_EQ(a.best_epoch, b.best_epoch);
}

// A fold stopped part-way (Ctrl-C between steps, or a process killed after an epoch) goes on from
// its saved state when run again, and ends with the result of one uninterrupted run; a finished
// fold keeps no training state.
TEST_F(CvRunFold, StoppedFoldGoesOnToTheSameResult) {
  const Toy t = toy();
  train::CvOptions cv;
  cv.folds = "5";
  const auto f = train::make_folds(t.ds, cv)[2];
  const data::Dataset d = train::fold_dataset(t.ds, f);
  train::TrainOptions o;
  o.epochs = 3, o.batch = 32, o.lr = 2e-3, o.seed = 1;
  const auto id = train::fold_identity(t.ds, cv, f, small_vit(), o);
  const auto whole = train::run_fold(d, f, small_vit(), o, (dir_ / "whole").string(), id);
  // The best epoch comes before the last resume, so the best weights must come from the file.
  ASSERT_LT(whole.best_epoch, o.epochs) << "choose a seed whose best epoch is not the last";
  const std::string dir = (dir_ / "parts").string();
  const int spe = static_cast<int>((d.count(data::kTrain) + o.batch - 1) / o.batch);
  for (int stop_after : {spe + 1, spe}) {  // steps into this call: stops at epoch 2 step 1, epoch 3 step 1
    int steps = 0;
    const std::string err = error_of([&] {
      train::run_fold(d, f, small_vit(), o, dir, id, {}, [&] { return steps++ >= stop_after; });
    });
    EXPECT_NE(err.find("run again to continue it"), std::string::npos) << err;
    EXPECT_TRUE(fs::exists(train::last_checkpoint_path(dir)));
    EXPECT_FALSE(train::load_fold_result(dir, id).has_value());
    EXPECT_FALSE(fs::exists(train::fold_predictions_path(dir)));  // only a finished fold has them
  }
  std::vector<std::string> lines;
  const auto parts = train::run_fold(d, f, small_vit(), o, dir, id, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines[0].find("resuming from"), std::string::npos) << lines[0];
  EXPECT_EQ(parts.confusion, whole.confusion);
  EXPECT_EQ(parts.best_val_acc, whole.best_val_acc);
  EXPECT_EQ(parts.best_epoch, whole.best_epoch);
  // Its time covers every epoch, those of the runs before the resume included.
  std::ifstream hist(dir + "/history.json");
  const auto h = nlohmann::json::parse(hist);
  ASSERT_EQ(h.at("history").size(), static_cast<size_t>(o.epochs));
  double epochs_seconds = 0;
  for (const auto& e : h.at("history")) epochs_seconds += e.at("seconds").get<double>();
  EXPECT_GE(parts.seconds, epochs_seconds);
  EXPECT_EQ(params_of(dir + "/best.safetensors"), params_of((dir_ / "whole/best.safetensors").string()));
  EXPECT_TRUE(train::train_state_files(dir).empty());
  const auto bytes = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string pw = bytes(train::fold_predictions_path((dir_ / "whole").string()));
  EXPECT_GT(pw.size(), 1000u);
  EXPECT_EQ(bytes(train::fold_predictions_path(dir)), pw);  // the same probabilities, byte for byte
}


// An ensemble of finished runs of the same folds (`cv --combine`): one member gives that member's
// own result; two members give the argmax of their averaged class probabilities, on the test and
// on the validation subjects; a fold of other subjects or another fold's model is refused by name.
TEST_F(CvRunFold, EnsembleAveragesTheMembersProbabilities) {
  const Toy t = toy();
  train::CvOptions cv;
  cv.folds = "5";
  const auto folds = train::make_folds(t.ds, cv);
  const auto& f = folds[0];
  const data::Dataset d = train::fold_dataset(t.ds, f);
  train::TrainOptions oa, ob;
  oa.epochs = 2, oa.batch = 32, oa.lr = 2e-3, oa.seed = 1;
  ob = oa, ob.seed = 2, ob.epochs = 3;
  const std::string ra = (dir_ / "a").string(), rb = (dir_ / "b").string();
  const auto a = train::run_fold(d, f, small_vit(), oa, train::fold_dir(ra, 1), train::fold_identity(t.ds, cv, f, small_vit(), oa));
  const auto b = train::run_fold(d, f, small_vit(), ob, train::fold_dir(rb, 1), train::fold_identity(t.ds, cv, f, small_vit(), ob));
  const auto subjects = train::fold_subjects_identity(train::fold_identity(t.ds, cv, f, nlohmann::json(), train::TrainOptions()));
  EXPECT_EQ(subjects.size(), 5u);
  EXPECT_EQ(subjects, train::fold_subjects_identity(a.identity));
  const auto ma = train::load_member_fold(ra, 1, subjects), mb = train::load_member_fold(rb, 1, subjects);
  ASSERT_TRUE(ma && mb);
  EXPECT_EQ(ma->checkpoint, train::fold_dir(ra, 1) + "/best.safetensors");
  EXPECT_EQ(ma->predictions, train::fold_dir(ra, 1) + "/predictions.safetensors");  // what the fold wrote
  EXPECT_FALSE(train::load_member_fold(ra, 2, subjects).has_value());  // not run: no result yet

  // One member: its own test result, and its validation accuracy at the selected epoch.
  const FoldResult one = train::combine_fold(d, f, {*ma}, {});
  EXPECT_EQ(one.confusion, a.confusion);
  EXPECT_DOUBLE_EQ(one.best_val_acc, a.best_val_acc);
  EXPECT_EQ(one.best_epoch, -1);

  // Two members: the argmax of the mean of their probabilities, by hand.
  const auto ca = nn::load_checkpoint(ma->checkpoint), cb = nn::load_checkpoint(mb->checkpoint);
  const FoldResult two = train::combine_fold(d, f, {*ma, *mb}, {{"members", 2}});
  int64_t disagree = 0;  // windows where the average, not either member alone, decides
  for (uint8_t part : {data::kVal, data::kTest}) {
    const auto pa = train::predict_split(*ca.model, d, part), pb = train::predict_split(*cb.model, d, part);
    std::vector<int64_t> cm(4, 0);
    int64_t right = 0, differ = 0;
    for (size_t i = 0; i < pa.truth.size(); ++i) {
      const float p0 = (pa.probs[2 * i] + pb.probs[2 * i]) / 2, p1 = (pa.probs[2 * i + 1] + pb.probs[2 * i + 1]) / 2;
      const int pred = p1 > p0 ? 1 : 0;
      cm[pa.truth[i] * 2 + pred]++;
      right += pred == pa.truth[i];
      differ += pa.pred[i] != pb.pred[i];
    }
    if (part == data::kTest) {
      EXPECT_EQ(two.confusion, cm);
      EXPECT_DOUBLE_EQ(two.accuracy, double(right) / pa.truth.size());
    } else {
      EXPECT_DOUBLE_EQ(two.best_val_acc, double(right) / pa.truth.size());
    }
    disagree += differ;
  }
  ASSERT_GT(disagree, 0) << "the members agree everywhere: the test would not see the averaging";
  int64_t total = 0;
  for (const auto& s : two.subjects) total += s.total();
  EXPECT_EQ(total, two.test_windows);
  EXPECT_EQ(two.identity["members"], 2);

  // Another fold's subjects: refused naming the result file; another fold's data: the predictions
  // are of other windows.
  const auto other = train::fold_subjects_identity(train::fold_identity(t.ds, cv, folds[1], nlohmann::json(), train::TrainOptions()));
  const std::string e1 = error_of([&] { train::load_member_fold(ra, 1, other); });
  EXPECT_NE(e1.find(train::fold_dir(ra, 1) + "/result.json: another fold than this one (fold, test_subjects, val_subjects differ)"),
            std::string::npos) << e1;
  const data::Dataset d2 = train::fold_dataset(t.ds, folds[1]);
  const std::string e2 = error_of([&] { train::combine_fold(d2, folds[1], {*ma}, {}); });
  EXPECT_NE(e2.find(ma->predictions + ": not fold 2's val windows"), std::string::npos) << e2;
  // Predictions of another model than the one result.json reports (a fold trained again since).
  const auto refused = [&](const std::function<void(train::MemberFold&)>& change, const data::Dataset& data,
                           const std::string& want) {
    train::MemberFold m = *ma;
    change(m);
    const std::string e = error_of([&] { train::combine_fold(data, f, {m}, {}); });
    EXPECT_NE(e.find(ma->predictions + ": " + want), std::string::npos) << e;
    EXPECT_NE(e.find("remove it to predict with " + ma->checkpoint), std::string::npos) << e;
  };
  const std::string other_model = "not the predictions of the model its fold's result.json reports";
  refused([](train::MemberFold& m) { m.result.best_epoch += 1; }, d, other_model);
  refused([](train::MemberFold& m) { m.result.best_val_acc += 1e-9; }, d, other_model);
  refused([](train::MemberFold& m) { m.result.identity["options"]["seed"] = 99; }, d, other_model);
  refused([](train::MemberFold& m) { m.result.confusion[0] += 1; }, d,
          "its test predictions are not the confusion matrix its fold's result.json reports");
  data::Dataset moved = d;  // the same windows and labels, other signal values
  moved.mean[0] += 0.5f;
  {
    const std::string e = error_of([&] { train::combine_fold(moved, f, {*ma}, {}); });
    EXPECT_NE(e.find(ma->predictions + ": its normalisation statistics are not those of fold 1"), std::string::npos) << e;
  }

  // Without the predictions files (folds trained before they existed), the selected models predict:
  // the same ensemble.
  fs::remove(ma->predictions);
  fs::remove(mb->predictions);
  const auto ca2 = train::load_member_fold(ra, 1, subjects), cb2 = train::load_member_fold(rb, 1, subjects);
  ASSERT_TRUE(ca2 && cb2);
  EXPECT_TRUE(ca2->predictions.empty());
  const FoldResult two_ck = train::combine_fold(d, f, {*ca2, *cb2}, {});
  EXPECT_EQ(two_ck.confusion, two.confusion);
  EXPECT_DOUBLE_EQ(two_ck.best_val_acc, two.best_val_acc);
  const std::string e4 = error_of([&] { train::combine_fold(d2, folds[1], {*ca2}, {}); });
  EXPECT_NE(e4.find(ma->checkpoint + ": its normalisation statistics are not those of fold 2"), std::string::npos) << e4;
  // Neither: refused when the member is read.
  fs::remove(ma->checkpoint);
  const std::string e5 = error_of([&] { train::load_member_fold(ra, 1, subjects); });
  EXPECT_NE(e5.find(ma->checkpoint + ": missing, and so is " + ma->predictions), std::string::npos) << e5;
}
