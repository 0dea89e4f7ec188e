// Subject-wise cross-validation: every subject is tested exactly once, by a model that never saw
// it, selected on validation subjects that are not tested in that fold either.
//
//   assign_folds      loso: one fold per subject (sorted ids); K: K groups of subjects (seeded
//                     shuffle, sizes differing by at most one)
//   make_fold         a fold's parts: its test subjects, validation subjects drawn (seeded) from the
//                     others, the rest for training
//   fold_dataset      the windows re-split by those parts, normalisation re-fitted on the fold's
//                     training windows only (the prepared file's statistics saw other subjects)
//   run_fold          trains with the trainer's pieces (one process, Comm::local()), keeps the
//                     best-validation weights and predicts the fold's test windows with them;
//                     writes DIR/best.safetensors, history.json, result.json
//   aggregate         mean +- sd over folds of accuracy and macro-F1, the pooled confusion matrix,
//                     per-subject accuracy (the hardest subjects first)
//   write_cv_report   cv.json, cv.md, per_subject.png, confusion.png
//
// A fold whose result.json exists and carries the same identity (data, fold parts, model, training
// options) is not trained again (load_fold_result): a long cross-validation continues where it
// stopped. The CLI (`harvit cv`, apps/harvit/cv_cmd.cpp) spreads the folds over MPI ranks or
// forked processes; every fold is trained by one process, so the numbers do not depend on how
// the folds were spread (at a given thread count).
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "train/metrics.h"
#include "train/trainer.h"

namespace harvit::train {

struct CvOptions {
  std::string folds = "loso";  // "loso" or a number K >= 2
  double val_fraction = 0.15;  // of the subjects outside a fold's test part (at least one subject)
  uint64_t fold_seed = 0;      // the K-fold grouping and every fold's validation subjects
};

// The distinct subjects of ds's windows that are not dropped, sorted.
std::vector<int32_t> cv_subjects(const data::Dataset& ds);

// Test subjects of every fold (each list sorted). Fails on a folds value that is neither loso nor
// an integer, K < 2, or K above the number of subjects.
std::vector<std::vector<int32_t>> assign_folds(const std::vector<int32_t>& subjects, const std::string& folds,
                                               uint64_t seed);

struct FoldSpec {
  int fold = 0;  // 1-based
  std::vector<int32_t> test, val, train;  // subjects, sorted
};
// Validation: max(1, round(val_fraction * n)) of the n subjects outside `test`, drawn with a seed
// made of (seed, fold); training: the rest (at least one subject, else a clear error).
FoldSpec make_fold(int fold, const std::vector<int32_t>& subjects, const std::vector<int32_t>& test,
                   double val_fraction, uint64_t seed);
std::vector<FoldSpec> make_folds(const data::Dataset& ds, const CvOptions& opt);

// ds's windows back in their raw units (x * std + mean; as they are when ds is not normalised),
// split by f's subjects (windows that ds dropped stay dropped), z-scored with statistics fitted on
// the training windows of the fold alone.
data::Dataset fold_dataset(const data::Dataset& ds, const FoldSpec& f);

// What ties a fold's result to the run that made it: the data (name, shape, a hash of the labels,
// subjects and splits), the cross-validation options, the fold's parts, the model configuration
// and the training options (TrainOptions::to_json: not the thread count, not the command).
nlohmann::json fold_identity(const data::Dataset& ds, const CvOptions& cv, const FoldSpec& f,
                             const nlohmann::json& model_cfg, const TrainOptions& opt);

struct SubjectResult {
  int32_t subject = 0;
  int fold = 0;
  std::vector<int64_t> confusion;  // (C, C), this subject's test windows
  int64_t correct() const;
  int64_t total() const;
  double accuracy() const { return total() ? double(correct()) / total() : 0.0; }
};

struct FoldResult {
  int fold = 0;
  std::vector<int32_t> test_subjects, val_subjects;
  int64_t train_subjects = 0, train_windows = 0, val_windows = 0, test_windows = 0;
  int64_t C = 0;
  std::vector<int64_t> confusion;  // (C, C) over the fold's test windows
  double accuracy = 0, macro_f1 = 0;
  int best_epoch = -1;
  double best_val_acc = -1;
  double seconds = 0;  // training and prediction
  int threads = 0;
  std::vector<SubjectResult> subjects;  // in test_subjects order
  nlohmann::json identity;
  nlohmann::json to_json() const;
  static FoldResult from_json(const nlohmann::json& j);
};

std::string fold_dir(const std::string& out_dir, int fold);  // OUT/fold-07
std::string fold_result_path(const std::string& dir);        // DIR/result.json
std::string fold_predictions_path(const std::string& dir);   // DIR/predictions.safetensors

// One line per epoch and per event, for the caller to print.
using FoldLog = std::function<void(const std::string& line)>;

// Trains a model (model_cfg, opt; opt.out_dir and opt.resume are replaced) on fold_ds's training
// windows, one process, selecting the epoch by validation accuracy; then predicts the test windows
// with the best weights. Writes dir/best.safetensors, dir/history.json, dir/predictions.safetensors
// (the selected model's class probabilities for the fold's validation and test windows, with the
// fold's normalisation statistics: what an ensemble needs, ~60 KB a UCI-HAR LOSO fold where its
// ViT is 43 MB) and, last, dir/result.json (carrying `identity`). Stops with an error when `stop` says so between steps (Ctrl-C). The
// training state is saved after every epoch and at a stop (dir/last.safetensors, removed when the
// fold ends), and a later call on the same dir goes on from it: the same result as one call.
FoldResult run_fold(const data::Dataset& fold_ds, const FoldSpec& f, const nlohmann::json& model_cfg,
                    const TrainOptions& opt, const std::string& dir, const nlohmann::json& identity,
                    const FoldLog& log = {}, const std::function<bool()>& stop = {});

// dir/result.json when it exists and its identity is `identity`; nothing when there is none. One
// that belongs to another run is an error naming the file and what differs.
std::optional<FoldResult> load_fold_result(const std::string& dir, const nlohmann::json& identity);

// ---- ensembles of finished cross-validations --------------------------------------------------

// The part of a fold identity that fixes the fold's subjects (data, cross-validation options,
// fold number, test and validation subjects): two runs whose folds agree on it tested the same
// subjects with models selected on the same validation subjects, whatever their models and recipes.
nlohmann::json fold_subjects_identity(const nlohmann::json& identity);

// A finished fold of another run, read for an ensemble: RUN/fold-XX/result.json, checked against
// `subjects` (fold_subjects_identity of this fold), and where its selected model's probabilities
// come from: the fold's predictions file when there is one (folds trained since it was added;
// kept when the models are deleted), else the selected model itself.
struct MemberFold {
  std::string run, checkpoint;  // RUN, RUN/fold-XX/best.safetensors
  std::string predictions;      // RUN/fold-XX/predictions.safetensors, or empty when absent
  FoldResult result;
};
// Nothing when RUN has no result for the fold yet; an error naming the file when its fold is another
// one (other data, cross-validation options or subjects), or when neither its predictions nor its
// model are there.
std::optional<MemberFold> load_member_fold(const std::string& run_dir, int fold, const nlohmann::json& subjects);

// An ensemble of finished cross-validations of the same folds: in fold f, the model each member
// selected predicts fold_ds's validation and test windows, the class probabilities are averaged
// with equal weights (fixed beforehand: nothing is fitted, on the test subjects or elsewhere), and
// the most probable class of the average is the ensemble's label. best_val_acc is the ensemble's
// accuracy on the fold's validation subjects - comparable with each member's own, and what choosing
// the ensemble over its members rests on; best_epoch is -1. A member's probabilities are read from
// its predictions file (which must be of the model its result.json reports, for exactly the fold's
// validation and test windows and labels) or computed with its checkpoint (whose classes, input
// shape and normalisation must be the fold's); errors name the file. (A member trained with
// --precision bf16 predicted in bf16 when its fold ended; its checkpoint predicts in fp32.)
FoldResult combine_fold(const data::Dataset& fold_ds, const FoldSpec& f, const std::vector<MemberFold>& members,
                        const nlohmann::json& identity);

struct CvSummary {
  std::vector<FoldResult> folds;  // by fold number
  int total_folds = 0;            // of the cross-validation (folds may be missing)
  double acc_mean = 0, acc_sd = 0, f1_mean = 0, f1_sd = 0;  // over folds; sd with n - 1 (0 for one fold)
  // The selected epochs' accuracy on the folds' validation subjects: what a recipe or model is
  // chosen on (the test subjects' figures above are reported, never chosen on).
  double val_mean = 0, val_sd = 0;
  Metrics pooled;                 // every test window of every fold
  std::vector<SubjectResult> subjects;  // hardest first: accuracy ascending, then subject id
  double subject_acc_mean = 0, subject_acc_sd = 0;  // over subjects
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
};
CvSummary aggregate(std::vector<FoldResult> folds, int total_folds);

struct CvReportInfo {
  std::string command, data, model, title;
  nlohmann::json model_config, options, cv;
  std::vector<std::string> class_names;
  double wall_seconds = 0;  // of this invocation
  // An ensemble's (combine_fold): what replaces "each fold trains ...", and a section of markdown
  // after the summary table (its members' figures on the same folds).
  std::string method, members_md;
};
// Writes dir/cv.json, dir/cv.md, dir/per_subject.png and dir/confusion.png (gnuplot); returns the
// path of cv.md.
std::string write_cv_report(const std::string& dir, const CvSummary& s, const CvReportInfo& info);

}  // namespace harvit::train
