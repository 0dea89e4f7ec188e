// Subcommands that live in their own files. Each add_* registers its subcommand (options and
// help) on the app and returns the function main() runs when that subcommand was chosen.
#pragma once
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

#include "core/comm.h"
#include "deploy/stream.h"
#include "nn/vit.h"
#include "train/trainer.h"

namespace harvit::cli {

using Runner = std::function<int()>;

// The streaming recogniser's settings, as `stream` and `replay` take them (stream_cmd.cpp).
struct RecognizerArgs {
  std::string precision = "fp32", method = "mean";
  int64_t hop = 0;
  int smooth = 1, votes = 0, hysteresis = 1, threads = 1;
  float min_confidence = 0.0f, reject = -1.0f;
};
// --hop --smooth --method --votes --reject --min-confidence --hysteresis --precision --threads
void add_recognizer_options(CLI::App* cmd, RecognizerArgs& r);
// The StreamOptions they make (max_gap_ns and queue left at their defaults).
deploy::StreamOptions stream_options(const RecognizerArgs& r);

// The job's processes: MPI's world under mpirun (when built with MPI), else one process. Set by
// main() before any subcommand runs.
Comm& job_comm();

// The command line as typed (for reports and checkpoints), each argument quoted where a shell
// would need it (read from /proc/self/cmdline, so it is right wherever it is asked).
std::string command_line();

// Comma-separated integers; errors name the option.
std::vector<int32_t> parse_int_list(const std::string& s, const char* what);

// What `train` and `cv` take to build and train a model (train_args.cpp).
struct TrainArgs {
  std::string model = "vit", channels = "64,128,128", recipe = "seed";
  int64_t kernel = 5;
  int threads = 0;
  nn::VitConfig vit;
  train::TrainOptions opt;
  // {"model": "vit"|"cnn", ...} without T, M, C (taken from the data).
  nlohmann::json model_config() const;
  // Applies --recipe to opt, keeping the options given explicitly on `cmd`.
  void resolve(CLI::App* cmd);
};
// The ViT's shape: --P --D --H --A --L --hidden.
void add_vit_shape_options(CLI::App* cmd, nn::VitConfig& c);
// --model --channels --kernel --recipe --epochs --batch --precision --lr --weight-decay
// --step-size --gamma --seed --threads --schedule --warmup-epochs --label-smoothing
// --class-weights --aug-* and the ViT's --P --D --H --A --L --hidden.
void add_train_options(CLI::App* cmd, TrainArgs& a);
// Threads for this process: `asked` if given (or OMP_NUM_THREADS set); else, with several ranks
// on this machine, its cores shared among them; else 0 (all cores).
int threads_for(const Comm& comm, int asked);
// Under OpenMPI's mpirun, rank 0 says how to let Ctrl-C save: mpirun passes SIGINT on as SIGTERM
// after odls_base_sigkill_timeout seconds (default 1) and sends SIGKILL as many seconds later,
// less than a ViT step and a save can take. Silent when the timeout is set to 5 s or more.
void note_mpirun_stop_timeout(const Comm& comm);

Runner add_stream_command(CLI::App& app);  // stream_cmd.cpp: `harvit stream`
Runner add_replay_command(CLI::App& app);  // replay_cmd.cpp: `harvit replay`
Runner add_export_command(CLI::App& app);  // export_cmd.cpp: `harvit export`
Runner add_explain_command(CLI::App& app);  // explain_cmd.cpp: `harvit explain`
Runner add_calibrate_command(CLI::App& app);  // trust_cmd.cpp: `harvit calibrate`
Runner add_openset_command(CLI::App& app);    // trust_cmd.cpp: `harvit openset`
Runner add_cv_command(CLI::App& app);         // cv_cmd.cpp: `harvit cv`

}  // namespace harvit::cli
