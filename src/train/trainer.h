// Training loop with the seed's recipe: AdamW, StepLR(epochs/3, 0.5), cross-entropy, shuffled
// batches; validation each epoch selects the best checkpoint (never the test split); the last
// state is kept for a bit-identical --resume; Ctrl-C saves and stops cleanly.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "data/dataset.h"
#include "nn/model.h"

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
  double aug_rotate = 0;      // rotate each xyz triple by up to this many degrees about a random axis
  int64_t aug_shift = 0;      // roll the window in time by up to this many samples
  std::string command;   // recorded in checkpoints and reports
  nlohmann::json to_json() const;
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
// taken from the data) on ds's train split.
TrainResult train_model(const data::Dataset& ds, nlohmann::json model_cfg, const TrainOptions& opt);

struct Predictions {
  double loss = 0;
  std::vector<int32_t> truth, pred;
  std::vector<float> probs;  // (n, C)
};
// Forward passes over the windows of `split` in batches (no gradient).
Predictions predict_split(nn::Model& model, const data::Dataset& ds, uint8_t split, int64_t batch = 256);

// Training-only augmentations of B windows (T, M) in place, drawn from rng.
void augment_windows(float* x, int64_t B, int64_t T, int64_t M, const TrainOptions& opt, Rng& rng);

// Set by SIGINT/SIGTERM while training; the loop saves and returns.
void install_interrupt_handler();

}  // namespace harvit::train
