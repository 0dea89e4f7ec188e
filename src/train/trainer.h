// Training with the seed's recipe by default: AdamW, StepLR(epochs/3, 0.5), cross-entropy,
// shuffled batches; validation each epoch selects the best checkpoint (never the test split); the
// last state is kept for a bit-identical --resume; Ctrl-C saves and stops cleanly.
//
// The pieces, for drivers other than `harvit train` (cross-validation, distributed training):
//   TrainSession      the model, optimizer, schedule and state of one run, checked and set up
//   train_epoch       runs (the rest of) one epoch of optimizer steps, may stop between steps
//   validate          loss and accuracy on a split
//   record_epoch      history and best model selection
//   finish_epoch      validate + record_epoch + the files an epoch's end writes
//   save_train_state / load_train_state   everything a bit-identical resume needs, in one place
// train_model (the CLI's loop) and cv's run_fold compose them.
//
// Data-parallel over the ranks of a Comm (mpirun): every rank holds the whole model and data,
// draws the same permutation and augmentations, and takes its contiguous share of every global
// batch; the shares' gradients, each weighted by its share of the batch's loss normaliser, are
// summed with one allreduce over the flat gradient slab, and every rank applies the same AdamW
// step, so N ranks compute what one process computes with the same global batch (up to the order
// of the floating-point sums). Rank 0 alone writes files and prints; resume state is read by rank
// 0 and broadcast; a stop (Ctrl-C on any rank, --max-steps) is agreed before every step. Schedules are in optim/schedule.h, the
// augmentations in data/augment.h, the named recipes in train/recipes.h.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/comm.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "nn/checkpoint.h"
#include "nn/model.h"
#include "optim/adamw.h"
#include "optim/schedule.h"

namespace harvit::train {

struct TrainOptions {
  int epochs = 50;
  int64_t batch = 128;
  double lr = 5e-4;
  double weight_decay = 1e-3;
  int64_t step_size = 0;  // StepLR step in epochs; 0 = max(1, epochs / 3) as the seed
  double gamma = 0.5;
  uint64_t seed = 0;
  std::string out_dir = "runs/vit";
  bool resume = false;
  int max_steps = 0;     // stop after this many optimizer steps in total (0 = no limit; tests)
  // fp32 | bf16 (mixed precision: bf16 GEMM inputs, fp32 accumulation, master weights, AdamW,
  // LayerNorm, softmax and loss; needs AVX512-BF16, else a clear error naming it).
  std::string precision = "fp32";
  // Recipe options beyond the seed's; the defaults keep the seed's recipe.
  std::string schedule = "step";  // step (StepLR per epoch) | cosine (per step, after warm-up)
  double warmup_epochs = 0;       // linear warm-up (cosine schedule)
  double label_smoothing = 0;
  std::string class_weights = "none";  // none | balanced (n / (C * n_c) over the training split)
  // Augmentations of training windows only (0 = off).
  double aug_scale = 0;       // multiply each axis by U(1 - s, 1 + s)
  double aug_jitter = 0;      // add N(0, sigma^2) noise
  double aug_rotate = 0;      // rotate each xyz triple (or all alike: aug_rotate_together) by up to this many degrees
  int64_t aug_shift = 0;      // roll the window in time by up to this many samples
  bool aug_rotate_together = false;  // one rotation per window for every triple (AugmentOptions)
  std::string command;   // recorded in checkpoints and reports
  nlohmann::json to_json() const;
  data::AugmentOptions augment() const {
    return {aug_scale, aug_jitter, aug_rotate, aug_shift, aug_rotate_together};
  }
};

struct EpochRecord {
  int epoch = 0;
  double lr = 0, train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, seconds = 0, windows_per_s = 0;
  nlohmann::json to_json() const;
  static EpochRecord from_json(const nlohmann::json& j);
};

struct TrainResult {
  std::vector<EpochRecord> history;
  int best_epoch = -1;
  double best_val_acc = -1;
  bool interrupted = false;
};

// Trains the model described by `model_cfg` ({"model": "vit" | "cnn", ...}; T, M and C are
// taken from the data) on ds's train split: a TrainSession, then per epoch train_epoch, validate,
// record_epoch, the best checkpoint and save_train_state; history.json at the end.
TrainResult train_model(const data::Dataset& ds, nlohmann::json model_cfg, const TrainOptions& opt,
                        Comm& comm = Comm::local());

// ---- the pieces -------------------------------------------------------------------------------

// Where a run stands between optimizer steps, besides the weights and the AdamW moments.
struct TrainState {
  int epoch = 0;                    // the epoch to run next (0-based)
  int64_t step = 0;                 // its first step to run (non-zero after a stop inside it)
  std::vector<uint64_t> epoch_rng;  // RNG state at the start of `epoch` (its permutation)
  double run_loss = 0;              // sums over the steps of `epoch` run so far
  int64_t run_correct = 0, run_seen = 0;
  std::vector<EpochRecord> history;
  int best_epoch = -1;
  double best_val_acc = -1;
};

// What ties a run's files to its data and options (resume refuses another run's files), and the
// metadata every checkpoint of the run carries.
struct RunIdentity {
  std::string data;         // "name:windows:training windows:fingerprint of the contents"
  nlohmann::json options;   // TrainOptions::to_json()
  std::string command;
  nn::CheckpointMeta meta;  // class names and normalisation statistics
  static RunIdentity of(const data::Dataset& ds, const TrainOptions& opt);
};

// The files of a run folder.
std::string last_checkpoint_path(const std::string& dir);   // weights + TrainState
std::string best_checkpoint_path(const std::string& dir);
// The training state's files in dir: last.safetensors (first) and the AdamW moments' file(s)
// (last.optim.<steps>-<nonce>.safetensors; last.optim.safetensors from older harvit).
std::vector<std::string> train_state_files(const std::string& dir);
void remove_train_state(const std::string& dir);

// Writes the AdamW moments (per parameter name, and the step count) to a file of a new name, then
// dir/last.safetensors (weights, the state, the identity and that name in its metadata), then
// removes the previous moments: each write is atomic, and whenever a crash comes, last.safetensors
// names moments that belong to it.
void save_train_state(const std::string& dir, const TrainState& st, const nn::Model& model, const optim::AdamW& adam,
                      const RunIdentity& id);
// Checks that dir's last files belong to this run (model config, data, options, optimizer step
// count), loads the weights into `model` and the moments and step count into `adam`, and returns
// the state. Errors name the file.
TrainState load_train_state(const std::string& dir, nn::Model& model, optim::AdamW& adam, const RunIdentity& id);

// One run's moving parts. The constructor checks the data and options, builds the model (seeded
// initialisation), AdamW, the schedule and the loss options, loads the last state when
// opt.resume, and then sets the training precision. With several ranks, every rank must build
// it (same data, same options: checked); rank 0 loads the resume state and the others receive it.
struct TrainSession {
  TrainSession(const data::Dataset& ds, nlohmann::json model_cfg, const TrainOptions& opt, Comm& comm = Comm::local());
  Comm* comm;
  const data::Dataset* ds;
  TrainOptions opt;
  RunIdentity id;
  std::vector<int64_t> train_idx;  // the training windows, in file order
  int64_t steps_per_epoch;
  std::unique_ptr<nn::Model> model;
  optim::AdamW adam;
  optim::LrSchedule schedule;
  TrainState state;
  int64_t steps_run = 0;  // optimizer steps taken by this session (not counting resumed ones)
};

struct EpochStats {
  bool complete = false;  // false: stopped before the epoch's end
  double lr = 0;          // the rate of the last step
  double loss = 0, acc = 0;  // over the epoch's steps (including those before a resume)
  double seconds = 0, windows_per_s = 0;  // of this call (a resumed epoch: the steps since the resume)
  double comm_seconds = 0;  // in the gradient allreduce (and the step's stop agreement), this rank
  int64_t steps = 0;        // optimizer steps run by this call
};
// Runs epoch s.state.epoch from step s.state.step: a permutation of the training windows drawn
// from state.epoch_rng, augmentations from data::augment_rng(seed, epoch, step), one AdamW step
// per batch at the schedule's rate. `stop`, asked before every step, may end the epoch early:
// the state then names the next step (save it to resume). At the end the state moves to the next
// epoch's first step, its sums cleared. progress: a live line on stdout (a terminal).
EpochStats train_epoch(TrainSession& s, const std::function<bool()>& stop = {}, bool progress = false);

// What every driver does after a complete epoch (train_model, a cv fold): validates on the
// validation split (every rank), records the epoch (history, best), and on rank 0 writes the best
// checkpoint when the epoch is the best so far, then the training state, then history.json, into
// s.opt.out_dir.
struct EpochEnd {
  EpochRecord rec;
  bool best = false;
};
EpochEnd finish_epoch(TrainSession& s, const EpochStats& es);

struct Validation {
  double loss = 0, acc = 0;
};
// Mean loss and accuracy of `model` on the windows of `split` (no gradient). With several ranks,
// each predicts its share of the windows and the sums are reduced: every rank gets the result.
Validation validate(nn::Model& model, const data::Dataset& ds, uint8_t split = data::kVal, int64_t batch = 256,
                    Comm& comm = Comm::local());

// Appends rec to the history; true (and the best updated) when its validation accuracy is above
// the best so far (the first of equals wins).
bool record_epoch(TrainState& st, const EpochRecord& rec);
// dir/best.safetensors: the weights with the epoch, its validation accuracy and the identity.
void save_best_checkpoint(const std::string& dir, const nn::Model& model, const RunIdentity& id, const EpochRecord& rec);
// dir/history.json: the history, the best epoch, the options and the command.
void write_history(const std::string& dir, const TrainState& st, const RunIdentity& id);

struct Predictions {
  double loss = 0;
  std::vector<int32_t> truth, pred;
  std::vector<float> probs;  // (n, C)
};
// Forward passes over the windows of `split` in batches (no gradient).
Predictions predict_split(nn::Model& model, const data::Dataset& ds, uint8_t split, int64_t batch = 256);

// Training-only augmentations of B windows (T, M) in place, drawn from rng: data::augment_windows
// with opt.augment().
void augment_windows(float* x, int64_t B, int64_t T, int64_t M, const TrainOptions& opt, Rng& rng);

// After this, SIGINT/SIGTERM set a flag (interrupt_requested()); train_model saves and returns.
void install_interrupt_handler();
bool interrupt_requested();
// The OpenMP pool's worker threads (oneDNN computes on them too) block SIGINT and SIGTERM, so that
// a second signal arriving before the first is handled waits for the calling thread, which has
// the handler's stack, instead of landing on a worker inside a oneDNN kernel whose stack pointer
// is in the heap. Starts the pool: never call it before a fork. Every TrainSession (train_model,
// a cv fold) calls it when the handler is installed. (Threads the pool adds later, for a larger set_num_threads, do not
// block them. A signal stack per worker was not chosen: ASan unmaps a thread's signal stack as the
// thread ends.)
void keep_signals_off_the_pool();

}  // namespace harvit::train
