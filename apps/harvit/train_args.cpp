// The model and recipe options of `train`, shared with `cv`.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "commands.h"
#include "core/tensor.h"
#include "nn/cnn.h"
#include "train/recipes.h"

namespace harvit::cli {

std::vector<int32_t> parse_int_list(const std::string& s, const char* what) {
  std::vector<int32_t> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty()) continue;
    try {
      size_t used = 0;
      out.push_back(std::stoi(tok, &used));
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::exception&) {
      fail(std::string(what) + ": '" + tok + "' is not an integer");
    }
  }
  return out;
}

std::string command_line() {
  std::ifstream f("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>()), out, arg;
  for (char c : raw) {
    if (c) {
      arg.push_back(c);
      continue;
    }
    const bool quote = arg.empty() || arg.find_first_of(" \t'\"$\\") != std::string::npos;
    out += (out.empty() ? "" : " ") + (quote ? "'" + arg + "'" : arg);
    arg.clear();
  }
  return out;
}

void add_vit_shape_options(CLI::App* cmd, nn::VitConfig& c) {
  cmd->add_option("--P", c.P, "patch length")->capture_default_str();
  cmd->add_option("--D", c.D, "embedding width")->capture_default_str();
  cmd->add_option("--H", c.H, "attention heads")->capture_default_str();
  cmd->add_option("--A", c.A, "width of one head")->capture_default_str();
  cmd->add_option("--L", c.L, "transformer blocks")->capture_default_str();
  cmd->add_option("--hidden", c.hidden, "dense tower width")->capture_default_str();
}

void add_train_options(CLI::App* tr, TrainArgs& a) {
  train::TrainOptions& to = a.opt;
  tr->add_option("--model", a.model, "vit | cnn")->check(CLI::IsMember({"vit", "cnn"}))->capture_default_str();
  tr->add_option("--channels", a.channels, "cnn: channels of the conv layers")->capture_default_str();
  tr->add_option("--kernel", a.kernel, "cnn: kernel size (odd)")->capture_default_str();
  tr->add_option("--recipe", a.recipe,
                 "seed: the seed's (default) | augmented: the recipe selected on WISDM validation "
                 "(cosine, warm-up 2, label smoothing 0.1, weight decay 0.05, scale 0.2, jitter 0.1, "
                 "shift 32, rotate 15); options given explicitly win")
      ->check(CLI::IsMember(train::recipe_names()))
      ->capture_default_str();
  tr->add_option("--epochs", to.epochs)->capture_default_str();
  tr->add_option("--batch", to.batch, "global batch (shared among the ranks under mpirun)")->capture_default_str();
  tr->add_option("--precision", to.precision,
                 "fp32 | bf16 (mixed precision: bf16 GEMMs, fp32 master weights; needs AVX512-BF16)")
      ->capture_default_str();
  tr->add_option("--lr", to.lr)->capture_default_str();
  tr->add_option("--weight-decay", to.weight_decay)->capture_default_str();
  tr->add_option("--step-size", to.step_size, "StepLR step in epochs (default epochs/3)");
  tr->add_option("--gamma", to.gamma, "StepLR factor")->capture_default_str();
  tr->add_option("--seed", to.seed)->capture_default_str();
  tr->add_option("--threads", a.threads, "threads per process (default: the cores, shared among the ranks on a machine)");
  tr->add_option("--schedule", to.schedule, "step (StepLR, the seed's) | cosine (with --warmup-epochs)")->capture_default_str();
  tr->add_option("--warmup-epochs", to.warmup_epochs, "linear warm-up before the cosine decay")->capture_default_str();
  tr->add_option("--label-smoothing", to.label_smoothing, "cross-entropy label smoothing")->capture_default_str();
  tr->add_option("--class-weights", to.class_weights, "none | balanced")->capture_default_str();
  tr->add_option("--aug-scale", to.aug_scale, "augment: random per-axis scaling by up to this fraction")->capture_default_str();
  tr->add_option("--aug-jitter", to.aug_jitter, "augment: Gaussian noise of this std (normalised units)")->capture_default_str();
  tr->add_option("--aug-rotate", to.aug_rotate, "augment: random 3-D rotations up to this many degrees")->capture_default_str();
  tr->add_flag("--aug-rotate-together", to.aug_rotate_together,
              "augment: one rotation per window for all xyz triples alike (a device's accelerometer "
              "and gyroscope turn together), not one per triple; needs --aug-rotate");
  tr->add_option("--aug-shift", to.aug_shift, "augment: random circular time shift up to this many samples")->capture_default_str();
  add_vit_shape_options(tr, a.vit);
}

void TrainArgs::resolve(CLI::App* cmd) {
  train::apply_recipe(recipe, opt, [&](const std::string& name) { return cmd->get_option(name)->count() > 0; });
}

nlohmann::json TrainArgs::model_config() const {
  if (model == "vit") return vit.to_json();
  if (model != "cnn") fail("--model must be vit or cnn, not '" + model + "'");
  nn::CnnConfig cc;
  cc.channels.clear();
  for (int32_t c : parse_int_list(channels, "--channels")) cc.channels.push_back(c);
  cc.kernel = kernel;
  return cc.to_json();
}

int threads_for(const Comm& comm, int asked) {
  if (asked > 0 || std::getenv("OMP_NUM_THREADS")) return asked;
  const int ranks_here = std::max(1, comm.local_size()), cores = static_cast<int>(std::thread::hardware_concurrency());
  return ranks_here > 1 ? std::max(1, cores / ranks_here) : 0;
}

void note_mpirun_stop_timeout(const Comm& comm) {
  if (!comm.distributed() || !comm.root() || !std::getenv("OMPI_COMM_WORLD_SIZE")) return;
  const char* t = std::getenv("OMPI_MCA_odls_base_sigkill_timeout");
  if (t && std::atoi(t) >= 5) return;
  std::printf("note: Ctrl-C saves the run only if mpirun waits for it: OpenMPI 4 kills the ranks %s s after passing "
              "the signal on (odls_base_sigkill_timeout, unless set in a config file); start mpirun with --mca "
              "odls_base_sigkill_timeout 10 (the state saved after every epoch is kept either way)\n", t ? t : "1");
  std::fflush(stdout);
}

}  // namespace harvit::cli
