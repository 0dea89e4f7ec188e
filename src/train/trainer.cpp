#include "train/trainer.h"

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "optim/adamw.h"
#include "optim/schedule.h"

namespace harvit::train {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }
bool g_handler_installed = false;

void gather(const data::Dataset& ds, const int64_t* idx, int64_t B, std::vector<float>& x, std::vector<int32_t>& y) {
  const int64_t W = ds.T * ds.M;
  x.resize(B * W);
  y.resize(B);
  for (int64_t b = 0; b < B; ++b) {
    std::copy(ds.x.begin() + idx[b] * W, ds.x.begin() + (idx[b] + 1) * W, x.begin() + b * W);
    y[b] = ds.y[idx[b]];
  }
}

int32_t argmax(const float* p, int64_t C) { return static_cast<int32_t>(std::max_element(p, p + C) - p); }

std::string fmt_time(double s) {
  char b[32];
  if (s >= 3600) std::snprintf(b, sizeof b, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else std::snprintf(b, sizeof b, "%dm%02ds", int(s / 60), int(s) % 60);
  return b;
}
}  // namespace

void install_interrupt_handler() {
  // The handler runs on a stack of its own (SA_ONSTACK). oneDNN 2.x's JIT f32 GEMM kernels
  // (Debian 12 ships 2.6.3) point rsp at a heap workspace while they run (K > 84 on AVX-512), so a
  // signal delivered then would write its frame - kilobytes with the AVX-512 state - into the heap
  // below that buffer (oneDNN issue 4845, fixed upstream in 3.11.2). Seen in CI: a rank of an
  // mpirun job aborting with "double free or corruption" after Ctrl-C. A signal sent to the
  // process goes to the main thread when it does not block it (Linux tries it first), and that
  // is the thread with this stack; forked workers (harvit cv --jobs) inherit both. A second
  // signal arriving before the first is handled could go to another thread: every TrainSession has
  // the OpenMP pool's workers block both (keep_signals_off_the_pool).
  alignas(64) static char alt_stack[1 << 16];
  stack_t ss{};
  ss.ss_sp = alt_stack;
  ss.ss_size = sizeof alt_stack;
  if (sigaltstack(&ss, nullptr) != 0) fail("sigaltstack failed: " + std::string(std::strerror(errno)));
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_ONSTACK | SA_RESTART;
  for (int sig : {SIGINT, SIGTERM})
    if (sigaction(sig, &sa, nullptr) != 0) fail("sigaction failed: " + std::string(std::strerror(errno)));
  g_handler_installed = true;
}

void keep_signals_off_the_pool() {
  const pthread_t self = pthread_self();
#pragma omp parallel
  if (!pthread_equal(pthread_self(), self)) {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, nullptr);
  }
}

bool interrupt_requested() { return g_interrupted; }

json TrainOptions::to_json() const {
  json j{{"epochs", epochs}, {"batch", batch}, {"lr", lr}, {"weight_decay", weight_decay}, {"seed", seed},
         {"optimizer", "AdamW(0.9, 0.999, eps 1e-8)"}, {"schedule", schedule}};
  if (schedule == "step") j["step_size"] = step_size, j["gamma"] = gamma;
  else j["warmup_epochs"] = warmup_epochs;
  if (label_smoothing > 0) j["label_smoothing"] = label_smoothing;
  if (class_weights != "none") j["class_weights"] = class_weights;
  if (aug_scale > 0) j["aug_scale"] = aug_scale;
  if (aug_jitter > 0) j["aug_jitter"] = aug_jitter;
  if (aug_rotate > 0) j["aug_rotate_deg"] = aug_rotate;
  if (aug_rotate > 0 && aug_rotate_together) j["aug_rotate_triples"] = "together";
  if (aug_shift > 0) j["aug_shift"] = aug_shift;
  if (precision != "fp32") j["precision"] = precision;
  return j;
}

void augment_windows(float* x, int64_t B, int64_t T, int64_t M, const TrainOptions& o, Rng& rng) {
  data::augment_windows(x, B, T, M, o.augment(), rng);
}

json EpochRecord::to_json() const {
  return {{"epoch", epoch}, {"lr", lr}, {"train_loss", train_loss}, {"train_acc", train_acc}, {"val_loss", val_loss},
          {"val_acc", val_acc}, {"seconds", seconds}, {"windows_per_s", windows_per_s}};
}

EpochRecord EpochRecord::from_json(const json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.lr = j.at("lr");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.val_loss = j.at("val_loss");
  r.val_acc = j.at("val_acc");
  r.seconds = j.at("seconds");
  r.windows_per_s = j.at("windows_per_s");
  return r;
}

Predictions predict_split(nn::Model& model, const data::Dataset& ds, uint8_t split, int64_t batch) {
  Predictions p;
  const auto idx = ds.indices(split);
  const int64_t C = model.C();
  std::vector<float> x;
  std::vector<int32_t> y;
  double loss_sum = 0, weight_sum = 0;  // the loss over the split, as validate computes it
  p.probs.resize(idx.size() * C);
  for (size_t s = 0; s < idx.size(); s += batch) {
    const int64_t B = std::min<int64_t>(batch, idx.size() - s);
    gather(ds, idx.data() + s, B, x, y);
    model.forward(x.data(), B);
    const double w = model.loss_weight(y.data(), B);
    loss_sum += double(model.loss(y.data())) * w;
    weight_sum += w;
    std::copy(model.probs(), model.probs() + B * C, p.probs.begin() + s * C);
    for (int64_t b = 0; b < B; ++b) {
      p.truth.push_back(y[b]);
      p.pred.push_back(argmax(model.probs() + b * C, C));
    }
  }
  p.loss = weight_sum > 0 ? loss_sum / weight_sum : 0.0;
  return p;
}

// ---- identity, state files -----------------------------------------------------------------

namespace {
json state_json(const TrainState& st) {
  json hist = json::array();
  for (auto& e : st.history) hist.push_back(e.to_json());
  return {{"epoch", st.epoch}, {"step", st.step}, {"epoch_rng", st.epoch_rng}, {"run_loss", st.run_loss},
          {"run_correct", st.run_correct}, {"run_seen", st.run_seen}, {"history", hist},
          {"best_epoch", st.best_epoch}, {"best_val_acc", st.best_val_acc}};
}

TrainState state_from_json(const json& st) {
  TrainState s;
  s.epoch = st.at("epoch");
  s.step = st.at("step");
  s.epoch_rng = st.at("epoch_rng").get<std::vector<uint64_t>>();
  s.run_loss = st.at("run_loss");
  s.run_correct = st.at("run_correct");
  s.run_seen = st.at("run_seen");
  for (auto& e : st.at("history")) s.history.push_back(EpochRecord::from_json(e));
  s.best_epoch = st.at("best_epoch");
  s.best_val_acc = st.at("best_val_acc");
  return s;
}
}  // namespace

RunIdentity RunIdentity::of(const data::Dataset& ds, const TrainOptions& opt) {
  RunIdentity id;
  // The windows, labels, splits and statistics themselves, not only their counts: a file prepared
  // again with other contents (or a cv fold with other subjects) is other data.
  char fp[24];
  std::snprintf(fp, sizeof fp, "%016llx",
                static_cast<unsigned long long>(fnv1a(ds.x, fnv1a(ds.y, fnv1a(ds.split, fnv1a(ds.mean, fnv1a(ds.std)))))));
  id.data = ds.name + ":" + std::to_string(ds.size()) + ":" + std::to_string(ds.count(data::kTrain)) + ":" + fp;
  id.options = opt.to_json();
  id.command = opt.command;
  id.meta.class_names = ds.class_names;
  id.meta.normalization = {{"mean", ds.mean}, {"std", ds.std}, {"axes", ds.axis_names}};
  return id;
}

std::string last_checkpoint_path(const std::string& dir) { return dir + "/last.safetensors"; }
std::string best_checkpoint_path(const std::string& dir) { return dir + "/best.safetensors"; }

namespace {
// last.optim.<steps>-<nonce>.safetensors, and the name harvit before these pairs used.
bool is_optimizer_file(const std::string& name) {
  return name == "last.optim.safetensors" || (name.rfind("last.optim.", 0) == 0 && name.size() > 23 &&
                                               name.compare(name.size() - 12, 12, ".safetensors") == 0);
}
}  // namespace

std::vector<std::string> train_state_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  const bool has_last = fs::exists(last_checkpoint_path(dir), ec);
  if (has_last) out.push_back(last_checkpoint_path(dir));
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (is_optimizer_file(e.path().filename().string())) out.push_back(e.path().string());
  std::sort(out.begin() + has_last, out.end());
  return out;
}

void remove_train_state(const std::string& dir) {
  for (const auto& f : train_state_files(dir)) fs::remove(f);  // last.safetensors first: no state points at nothing
}

void save_train_state(const std::string& dir, const TrainState& st, const nn::Model& model, const optim::AdamW& adam,
                      const RunIdentity& id) {
  // Two files, each written atomically, and a pair whichever moment a crash picks: the moments go
  // to a file of their own name, which the new last.safetensors names; the previous moments stay
  // until that rename is done, so the previous pair is whole until the new one is.
  char nonce[40];
  std::snprintf(nonce, sizeof nonce, "%lld-%016llx", static_cast<long long>(adam.steps()),
                static_cast<unsigned long long>(std::random_device{}()) << 32 ^ std::random_device{}());
  const std::string optim_name = std::string("last.optim.") + nonce + ".safetensors";
  // AdamW moments per parameter, named like the parameters (independent of the slab layout)
  SafetensorsWriter w;
  for (const auto& p : model.params().infos()) {
    w.add_f32("exp_avg." + p.name, p.shape, adam.m().data() + p.offset);
    w.add_f32("exp_avg_sq." + p.name, p.shape, adam.v().data() + p.offset);
  }
  w.set_metadata("optimizer_steps", std::to_string(adam.steps()));
  w.write(dir + "/" + optim_name);
  json ts = state_json(st);
  ts["optimizer_steps"] = adam.steps();
  ts["optimizer_file"] = optim_name;
  ts["data"] = id.data;
  ts["options"] = id.options;
  nn::CheckpointMeta lm = id.meta;
  lm.extra = {{"command", id.command}, {"train_state", ts}};
  nn::save_checkpoint(last_checkpoint_path(dir), model, lm);
  for (const auto& f : train_state_files(dir))  // the previous pair's moments
    if (fs::path(f).filename() != optim_name && fs::path(f).filename() != "last.safetensors") fs::remove(f);
}

TrainState load_train_state(const std::string& dir, nn::Model& model, optim::AdamW& adam, const RunIdentity& id) {
  const std::string last_path = last_checkpoint_path(dir);
  if (!fs::exists(last_path)) fail(last_path + ": nothing to resume (no last checkpoint in " + dir + ")");
  auto ck = nn::load_checkpoint(last_path);
  const json st = ck.meta.extra.value("train_state", json());
  if (st.is_null()) fail(last_path + ": has no training state");
  // The moments' file named by this state (harvit before the named pairs: last.optim.safetensors).
  const std::string optim_name = st.value("optimizer_file", std::string("last.optim.safetensors"));
  if (!is_optimizer_file(optim_name) || optim_name.find('/') != std::string::npos)
    fail(last_path + ": names no valid optimizer state file ('" + optim_name + "')");
  const std::string optim_path = dir + "/" + optim_name;
  if (!fs::exists(optim_path))
    fail(optim_path + ": missing (" + last_path + " names it); remove " + dir +
         "'s last.* files to start the run again");
  if (ck.model->config_json() != model.config_json()) fail(last_path + ": model config differs from this run's");
  const std::string data = st.at("data").get<std::string>();
  // harvit before the data fingerprint wrote name:windows:training windows; such a state resumes
  // when those agree (its contents cannot be checked)
  const bool older = std::count(data.begin(), data.end(), ':') == std::count(id.data.begin(), id.data.end(), ':') - 1 &&
                     id.data.compare(0, data.size() + 1, data + ":") == 0;
  if (data != id.data && !older)
    fail(last_path + ": was trained on other data (" + data + "; this run's: " + id.data +
         ", as name:windows:training windows:fingerprint)");
  if (st.at("options") != id.options)
    fail(last_path + ": training options differ from the checkpoint's: " + st.at("options").dump());
  std::copy(ck.model->params().values(), ck.model->params().values() + model.params().count(), model.params().values());
  auto of = SafetensorsFile::load(optim_path);
  if (of.metadata().at("optimizer_steps") != st.at("optimizer_steps").dump())
    fail(optim_path + ": does not belong to " + last_path + " (optimizer step counts differ); remove " + dir +
         "'s last.* files to start the run again");
  for (const auto& p : model.params().infos()) {
    for (auto [prefix, dst] : {std::pair<const char*, std::vector<float>*>{"exp_avg.", &adam.m()},
                               {"exp_avg_sq.", &adam.v()}}) {
      const std::string name = prefix + p.name;
      if (!of.has(name)) fail(optim_path + ": has no optimizer state \"" + name + "\" (written by an older harvit?)");
      auto t = of.floats(name);
      if ((int64_t)t.size() != p.size) fail(optim_path + ": optimizer state \"" + name + "\" has the wrong size");
      std::copy(t.begin(), t.end(), dst->begin() + p.offset);
    }
  }
  adam.set_steps(st.at("optimizer_steps"));
  TrainState s = state_from_json(st);
  return s;
}

// ---- the session ---------------------------------------------------------------------------

namespace {
// Checks what can be checked before anything is built (no side effects); returns the options unchanged.
const TrainOptions& checked(const data::Dataset& ds, const TrainOptions& opt, const Comm& comm) {
  if (opt.epochs <= 0 || opt.batch <= 0) fail("epochs and batch must be positive");
  if (ds.count(data::kTrain) == 0) fail(ds.name + ": no training windows");
  if (ds.count(data::kVal) == 0) fail(ds.name + ": no validation windows (prepare the data with a validation part)");
  if (ds.mean.empty()) fail(ds.name + ": the data is not normalised (prepare it with `harvit prepare`)");
  if (opt.batch < comm.size())
    throw CollectiveError("--batch " + std::to_string(opt.batch) + " is smaller than the " +
                          std::to_string(comm.size()) + " ranks: every rank needs a share of every batch");
  if (opt.aug_rotate > 0 && ds.M % 3)
    fail("--aug-rotate needs the axes in groups of 3 (x, y, z), the data has " + std::to_string(ds.M));
  if (opt.aug_rotate_together && opt.aug_rotate <= 0)
    fail("--aug-rotate-together needs a rotation: give --aug-rotate DEGREES (or a recipe that sets it)");
  return opt;
}

// Rank 0's model weights, AdamW state and run state to every rank, after checking that every rank
// read the same data with the same options (a rank started on another file would silently train
// a different model).
void sync_from_root(TrainSession& s) {
  Comm& comm = *s.comm;
  // id.data carries a fingerprint of the windows, labels, splits and statistics themselves
  const std::string mine = s.id.data + "\n" + s.id.options.dump() + "\n" + s.model->config_json().dump();
  const auto all = comm.gather(mine, 0);
  const auto data_of = [](const std::string& id) { return id.substr(0, id.find('\n')); };
  std::string why;  // rank 0 names the ranks that differ from it; every rank fails alike
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      why += (why.empty() ? "" : "; ") + std::string("rank ") + std::to_string(r) + ": " + data_of(all[r]) +
             (data_of(all[r]) == data_of(all[0]) ? " with other options or model" : "");
  if (!why.empty())
    why = "the ranks were not started on the same data and options (data as name:windows:training windows:data "
          "fingerprint): rank 0: " +
          data_of(all.front()) + "; " + why;
  comm.broadcast(why);
  if (!why.empty()) throw CollectiveError(why);
  nn::ParamSlab& p = s.model->params();
  comm.broadcast(p.values(), p.count() * int64_t(sizeof(float)));
  comm.broadcast(s.adam.m().data(), int64_t(s.adam.m().size() * sizeof(float)));
  comm.broadcast(s.adam.v().data(), int64_t(s.adam.v().size() * sizeof(float)));
  int64_t steps = s.adam.steps();
  comm.broadcast(&steps, sizeof steps);
  s.adam.set_steps(steps);
  std::string st = state_json(s.state).dump();
  comm.broadcast(st);
  s.state = state_from_json(json::parse(st));
}

std::unique_ptr<nn::Model> model_for(const data::Dataset& ds, json cfg) {
  cfg["T"] = ds.T;
  cfg["M"] = ds.M;
  cfg["C"] = static_cast<int64_t>(ds.class_names.size());
  return nn::make_model(cfg);
}
}  // namespace

TrainSession::TrainSession(const data::Dataset& d, json model_cfg, const TrainOptions& o, Comm& c)
    : comm(&c),
      ds(&d),
      opt(checked(d, o, c)),
      id(RunIdentity::of(d, o)),
      train_idx(d.indices(data::kTrain)),
      steps_per_epoch((static_cast<int64_t>(train_idx.size()) + o.batch - 1) / o.batch),
      model(model_for(d, std::move(model_cfg))),
      adam(model->params().count(), {o.lr, 0.9, 0.999, 1e-8, o.weight_decay}),
      schedule(o.schedule, o.lr, o.epochs, steps_per_epoch, o.step_size > 0 ? o.step_size : std::max(1, o.epochs / 3),
               o.gamma, o.warmup_epochs) {
  // Every training (train_model, a cv fold) builds a session, always after any fork (harvit cv
  // --jobs forks before its workers build theirs): the pool may start here.
  if (g_handler_installed) keep_signals_off_the_pool();
  if (comm->root()) fs::create_directories(opt.out_dir);
  Rng rng(opt.seed);
  model->params().init_default(rng);
  state.epoch_rng = rng.state();
  const int64_t C = model->C();
  std::vector<float> class_weights;
  if (opt.class_weights == "balanced") {
    std::vector<int64_t> n(C, 0);
    for (int64_t i : train_idx) n[d.y[i]]++;
    const double total = static_cast<double>(train_idx.size());
    for (int64_t c = 0; c < C; ++c) class_weights.push_back(n[c] ? static_cast<float>(total / (C * n[c])) : 0.0f);
  } else if (opt.class_weights != "none") {
    fail("--class-weights must be none or balanced");
  }
  model->set_loss_options(static_cast<float>(opt.label_smoothing), class_weights);
  if (opt.resume && comm->root()) state = load_train_state(opt.out_dir, *model, adam, id);
  if (comm->distributed()) sync_from_root(*this);
  const nn::Precision precision = nn::parse_precision(opt.precision);
  if (precision == nn::Precision::Int8) fail("--precision int8 is for inference (eval, predict); train in fp32 or bf16");
  model->set_precision(precision);  // after the weights are final (init or resume): bf16 rounds them now
}

// ---- one epoch, validation, selection ------------------------------------------------------

namespace {
// The ranks must hold the same weights and moments (every rank applies the same step to the same
// sums; MPI does not promise identical sums on every rank, though OpenMPI's algorithms give
// them): a fingerprint compared once per epoch, so a divergence stops the run with a message
// instead of training N different models.
void check_ranks_agree(TrainSession& s) {
  const nn::ParamSlab& p = s.model->params();
  uint64_t h = fnv1a(p.values(), p.count() * sizeof(float));
  h = fnv1a(s.adam.m(), fnv1a(s.adam.v(), h));
  int64_t mine = static_cast<int64_t>(h >> 1), root = mine;
  s.comm->broadcast(&root, sizeof root);
  int64_t differs = mine != root;
  s.comm->allreduce_max(&differs, 1);
  if (differs)
    throw CollectiveError("the ranks' weights diverged at the end of epoch " + std::to_string(s.state.epoch + 1) +
                          " (the MPI library's sums differ between ranks: use an allreduce algorithm that "
                          "gives every rank the same result)");
}
}  // namespace

EpochStats train_epoch(TrainSession& s, const std::function<bool()>& stop, bool progress) {
  const TrainOptions& opt = s.opt;
  const data::Dataset& ds = *s.ds;
  nn::Model& model = *s.model;
  TrainState& st = s.state;
  const int64_t C = model.C(), n_train = static_cast<int64_t>(s.train_idx.size()), spe = s.steps_per_epoch;
  const int epoch = st.epoch;
  const bool augment = opt.augment().any();
  // The permutation is a function of the RNG state at the epoch start, kept for resume.
  Rng erng(0);
  erng.set_state(st.epoch_rng);
  std::vector<int64_t> perm = s.train_idx;
  for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[erng.below(i)]);
  EpochStats es;
  es.lr = s.schedule.lr(epoch, st.step);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t first = st.step;
  if (first == 0) st.run_loss = 0, st.run_correct = 0, st.run_seen = 0;
  int64_t seen_now = 0;  // windows of this call's steps
  std::vector<float> x;
  std::vector<int32_t> y;
  Comm& comm = *s.comm;
  const bool dist = comm.distributed();
  const auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  for (int64_t step = first; step < spe; ++step) {
    st.step = step;
    int64_t stop_now = stop && stop();
    if (dist) {  // every rank stops before the same step, whichever rank was asked
      const auto tc = std::chrono::steady_clock::now();
      comm.allreduce_max(&stop_now, 1);
      es.comm_seconds += seconds_since(tc);
    }
    if (stop_now) return es;  // complete = false; the state names this step
    const int64_t B = std::min<int64_t>(opt.batch, n_train - step * opt.batch);
    gather(ds, perm.data() + step * opt.batch, B, x, y);
    if (augment) {  // the whole global batch, on every rank: the shares are then those of one process
      Rng arng = data::augment_rng(opt.seed, epoch, step);
      data::augment_windows(x.data(), B, ds.T, ds.M, opt.augment(), arng);
    }
    // This rank's share of the batch: [lo, hi)
    const int64_t lo = B * comm.rank() / comm.size(), hi = B * (comm.rank() + 1) / comm.size(), n = hi - lo;
    es.lr = s.schedule.lr(epoch, step);
    model.params().zero_grad();
    // batch loss = sum over shares of share loss * (share's loss normaliser / batch's); so is its
    // gradient. One process: one share, the factor 1.
    const double share = n > 0 ? model.loss_weight(y.data() + lo, n) / model.loss_weight(y.data(), B) : 0.0;
    double loss_sum = 0, correct = 0;  // this share's part of (batch loss x B), its correct count
    // With several ranks the gradient is summed over them: range by range as the backward pass
    // completes each (model.grad_stages(); the first, the dense tower's, is most of the slab and
    // is final early), else the whole slab after it. Every rank starts the same sums in the same
    // order, including one with no share of this batch.
    float* g = model.params().grads();
    const bool hooked = !model.grad_stages().empty();  // else one stage: the slab, after backward
    const std::vector<std::pair<int64_t, int64_t>> whole{{0, model.params().count()}};
    const auto& stages = hooked ? model.grad_stages() : whole;
    double t_comm = 0;
    size_t next_stage = 0;  // every rank starts the stage sums in the one order
    const auto start_stage = [&](size_t i) {
      if (i != next_stage++) fail("internal: gradient stage " + std::to_string(i) + " reported out of order");
      const auto [a, b] = stages[i];
      const float f = static_cast<float>(share);
      for (int64_t k = a; k < b; ++k) g[k] *= f;
      const auto tc = std::chrono::steady_clock::now();
      comm.start_allreduce_sum(g + a, b - a);
      comm.progress();
      t_comm += seconds_since(tc);
    };
    if (dist && hooked) model.on_grad_stage(start_stage);
    struct Unhook {  // the hook refers to this step's locals: gone with them, also on an exception
      nn::Model& m;
      ~Unhook() { m.on_grad_stage({}); }
    } unhook{model};
    if (n > 0) {
      const float* logits = model.forward(x.data() + lo * ds.T * ds.M, n);
      loss_sum = double(model.loss(y.data() + lo)) * share * B;
      for (int64_t b = 0; b < n; ++b) correct += argmax(logits + b * C, C) == y[lo + b];
      model.backward(y.data() + lo);
    }
    if (dist) {
      // the stages backward did not start: all of them without a hook or without windows (zeros,
      // in the same order as the other ranks)
      if (!hooked || n == 0)
        while (next_stage < stages.size()) start_stage(next_stage);
      if (next_stage != stages.size()) fail("internal: backward reported " + std::to_string(next_stage) + " of " +
                                            std::to_string(stages.size()) + " gradient stages");
      const auto tc = std::chrono::steady_clock::now();
      comm.finish_allreduces();
      double sums[2] = {loss_sum, correct};
      comm.allreduce_sum(sums, 2);
      es.comm_seconds += t_comm + seconds_since(tc);
      loss_sum = sums[0], correct = sums[1];
    }
    s.adam.step(model.params().values(), model.params().grads(), es.lr);
    model.params_changed();
    st.run_correct += static_cast<int64_t>(correct);
    st.run_loss += loss_sum;
    st.run_seen += B;
    seen_now += B;
    ++s.steps_run;
    ++es.steps;
    if (progress) {
      const double el = seconds_since(t0);
      const double wps = (step - first + 1) * double(opt.batch) / std::max(el, 1e-9);
      const double left = ((opt.epochs - epoch - 1) * double(n_train) + (spe - step - 1) * double(opt.batch)) / wps;
      std::printf("\repoch %d/%d  step %lld/%lld  loss %.4f  %.0f win/s  ETA %s   ", epoch + 1, opt.epochs,
                  (long long)step + 1, (long long)spe, st.run_loss / st.run_seen, wps, fmt_time(left).c_str());
      std::fflush(stdout);
    }
  }
  if (dist) check_ranks_agree(s);
  es.complete = true;
  es.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  es.loss = st.run_loss / st.run_seen;
  es.acc = double(st.run_correct) / st.run_seen;
  es.windows_per_s = seen_now / std::max(es.seconds, 1e-9);
  st.epoch = epoch + 1;
  st.step = 0;
  st.epoch_rng = erng.state();
  st.run_loss = 0, st.run_correct = 0, st.run_seen = 0;
  return es;
}

Validation validate(nn::Model& model, const data::Dataset& ds, uint8_t split, int64_t batch, Comm& comm) {
  std::vector<int64_t> idx = ds.indices(split);
  const int64_t N = static_cast<int64_t>(idx.size());
  const int64_t lo = N * comm.rank() / comm.size(), hi = N * (comm.rank() + 1) / comm.size();
  const int64_t C = model.C();
  std::vector<float> x;
  std::vector<int32_t> y;
  // The loss over the split is the loss of one batch of all of it: batch losses weighted by their
  // loss normalisers (the window counts without class weights), whatever the batches and shares.
  double sums[3] = {0, 0, 0};  // loss x normaliser, normaliser, correct
  for (int64_t s = lo; s < hi; s += batch) {
    const int64_t B = std::min<int64_t>(batch, hi - s);
    gather(ds, idx.data() + s, B, x, y);
    const float* logits = model.forward(x.data(), B);
    const double w = model.loss_weight(y.data(), B);
    sums[0] += double(model.loss(y.data())) * w;
    sums[1] += w;
    for (int64_t b = 0; b < B; ++b) sums[2] += argmax(logits + b * C, C) == y[b];
  }
  comm.allreduce_sum(sums, 3);
  return {sums[1] > 0 ? sums[0] / sums[1] : 0.0, N ? sums[2] / N : 0.0};
}

bool record_epoch(TrainState& st, const EpochRecord& rec) {
  st.history.push_back(rec);
  if (!(rec.val_acc > st.best_val_acc)) return false;
  st.best_val_acc = rec.val_acc;
  st.best_epoch = rec.epoch;
  return true;
}

void save_best_checkpoint(const std::string& dir, const nn::Model& model, const RunIdentity& id, const EpochRecord& rec) {
  nn::CheckpointMeta bm = id.meta;
  bm.extra = {{"command", id.command}, {"epoch", rec.epoch}, {"val_acc", rec.val_acc}, {"data", id.data},
              {"options", id.options}};
  nn::save_checkpoint(best_checkpoint_path(dir), model, bm);
}

void write_history(const std::string& dir, const TrainState& st, const RunIdentity& id) {
  json hist = json::array();
  for (auto& e : st.history) hist.push_back(e.to_json());
  write_file_atomic(dir + "/history.json", json{{"history", hist}, {"best_epoch", st.best_epoch},
                                                {"best_val_acc", st.best_val_acc}, {"options", id.options},
                                                {"command", id.command}}.dump(2));
}

EpochEnd finish_epoch(TrainSession& s, const EpochStats& es) {
  EpochEnd e;
  EpochRecord& rec = e.rec;
  rec.epoch = s.state.epoch;  // train_epoch moved the state on: the epoch just run, 1-based
  rec.lr = es.lr;
  rec.train_loss = es.loss;
  rec.train_acc = es.acc;
  const Validation val = validate(*s.model, *s.ds, data::kVal, 256, *s.comm);
  rec.val_loss = val.loss;
  rec.val_acc = val.acc;
  rec.seconds = es.seconds;
  rec.windows_per_s = es.windows_per_s;
  e.best = record_epoch(s.state, rec);
  if (s.comm->root()) {
    const std::string& dir = s.opt.out_dir;
    if (e.best) save_best_checkpoint(dir, *s.model, s.id, rec);
    save_train_state(dir, s.state, *s.model, s.adam, s.id);  // after best: a resume finds both
    write_history(dir, s.state, s.id);  // the curves so far, also when the run stops later
  }
  return e;
}

// ---- the CLI's loop --------------------------------------------------------------------------

TrainResult train_model(const data::Dataset& ds, json cfg, const TrainOptions& opt, Comm& comm) {
  TrainSession s(ds, std::move(cfg), opt, comm);
  const std::string& dir = opt.out_dir;
  const bool root = comm.root();  // rank 0 writes the files and speaks for the job
  // The live progress line only on a terminal, and not under mpirun: OpenMPI gives its ranks a
  // pseudo-terminal even when mpirun's own output goes to a file.
  const bool tty = !comm.distributed() && ::isatty(1);
  const auto say = [&](const char* fmt, auto... args) {
    if (!root) return;
    std::printf(fmt, args...);
    std::fflush(stdout);
  };
  if (opt.resume)
    say("resuming from %s: epoch %d, step %lld\n", last_checkpoint_path(dir).c_str(), s.state.epoch + 1,
        (long long)s.state.step);
  const auto t_start = std::chrono::steady_clock::now();
  say("training %s (%s) on %s: %lld train / %lld val windows, %d epochs x %lld steps (batch %lld), %d threads%s%s\n",
      s.model->kind().c_str(), nn::precision_name(s.model->precision()), ds.name.c_str(),
      (long long)s.train_idx.size(), (long long)ds.count(data::kVal), opt.epochs, (long long)s.steps_per_epoch,
      (long long)opt.batch, num_threads(), comm.distributed() ? " per rank, " : "",
      comm.distributed() ? comm.describe().c_str() : "");
  auto result = [&](bool interrupted) {
    return TrainResult{s.state.history, s.state.best_epoch, s.state.best_val_acc, interrupted};
  };
  const auto stop = [&] { return g_interrupted || (opt.max_steps && s.steps_run >= opt.max_steps); };
  while (s.state.epoch < opt.epochs) {
    const EpochStats es = train_epoch(s, stop, tty);
    if (!es.complete) {
      if (root) save_train_state(dir, s.state, *s.model, s.adam, s.id);
      if (tty) std::printf("\n");
      say("%s: saved %s at epoch %d step %lld; continue with --resume\n",
          opt.max_steps && s.steps_run >= opt.max_steps ? "step limit reached" : "interrupted",
          last_checkpoint_path(dir).c_str(), s.state.epoch + 1, (long long)s.state.step);
      return result(true);
    }
    const EpochEnd end = finish_epoch(s, es);
    const EpochRecord& rec = end.rec;
    const bool best = end.best;
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    if (tty) std::printf("\r");
    char comm_note[64] = "";
    if (comm.distributed())
      std::snprintf(comm_note, sizeof comm_note, "  allreduce %.1f ms/step",
                    1e3 * es.comm_seconds / std::max<int64_t>(1, es.steps));
    say("epoch %3d/%d  lr %.2e  train loss %.4f acc %.4f  val loss %.4f acc %.4f%s  %.0f win/s%s  %s elapsed\n",
        rec.epoch, opt.epochs, rec.lr, rec.train_loss, rec.train_acc, rec.val_loss, rec.val_acc, best ? " *" : "  ",
        rec.windows_per_s, comm_note, fmt_time(total).c_str());
  }
  if (root) write_history(dir, s.state, s.id);
  return result(false);
}

}  // namespace harvit::train
