#include "train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "nn/checkpoint.h"
#include "nn/layers.h"
#include "optim/adamw.h"

namespace harvit::train {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
std::atomic<bool> g_interrupted{false};
extern "C" void on_signal(int) { g_interrupted = true; }

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
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

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
  if (aug_shift > 0) j["aug_shift"] = aug_shift;
  if (precision != "fp32") j["precision"] = precision;
  return j;
}

void augment_windows(float* x, int64_t B, int64_t T, int64_t M, const TrainOptions& o, Rng& rng) {
  const double kPi = 3.14159265358979323846;
  std::vector<float> tmp(T * M);
  for (int64_t b = 0; b < B; ++b) {
    float* w = x + b * T * M;
    if (o.aug_shift > 0) {
      const int64_t k = static_cast<int64_t>(rng.below(2 * o.aug_shift + 1)) - o.aug_shift;
      for (int64_t t = 0; t < T; ++t)
        std::copy(w + t * M, w + (t + 1) * M, tmp.begin() + ((t + k + T) % T) * M);
      std::copy(tmp.begin(), tmp.end(), w);
    }
    if (o.aug_rotate > 0) {
      for (int64_t g = 0; g + 3 <= M; g += 3) {
        // Rodrigues: rotation by angle a about the unit axis u.
        double u[3] = {rng.normal(), rng.normal(), rng.normal()};
        const double n = std::sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]) + 1e-12;
        for (double& v : u) v /= n;
        const double a = (2.0 * rng.uniform() - 1.0) * o.aug_rotate * kPi / 180.0, c = std::cos(a), s = std::sin(a);
        double R[3][3];
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) R[i][j] = (i == j ? c : 0.0) + (1 - c) * u[i] * u[j];
        R[0][1] -= s * u[2], R[0][2] += s * u[1], R[1][0] += s * u[2], R[1][2] -= s * u[0], R[2][0] -= s * u[1], R[2][1] += s * u[0];
        for (int64_t t = 0; t < T; ++t) {
          float* v = w + t * M + g;
          const double v0 = v[0], v1 = v[1], v2 = v[2];
          for (int i = 0; i < 3; ++i) v[i] = static_cast<float>(R[i][0] * v0 + R[i][1] * v1 + R[i][2] * v2);
        }
      }
    }
    if (o.aug_scale > 0)
      for (int64_t m = 0; m < M; ++m) {
        const float f = static_cast<float>(1.0 + (2.0 * rng.uniform() - 1.0) * o.aug_scale);
        for (int64_t t = 0; t < T; ++t) w[t * M + m] *= f;
      }
    if (o.aug_jitter > 0)
      for (int64_t i = 0; i < T * M; ++i) w[i] += static_cast<float>(o.aug_jitter) * rng.normal();
  }
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
  double loss_sum = 0;
  p.probs.resize(idx.size() * C);
  for (size_t s = 0; s < idx.size(); s += batch) {
    const int64_t B = std::min<int64_t>(batch, idx.size() - s);
    gather(ds, idx.data() + s, B, x, y);
    model.forward(x.data(), B);
    loss_sum += double(model.loss(y.data())) * B;
    std::copy(model.probs(), model.probs() + B * C, p.probs.begin() + s * C);
    for (int64_t b = 0; b < B; ++b) {
      p.truth.push_back(y[b]);
      p.pred.push_back(argmax(model.probs() + b * C, C));
    }
  }
  p.loss = idx.empty() ? 0.0 : loss_sum / idx.size();
  return p;
}

TrainResult train_model(const data::Dataset& ds, json cfg, const TrainOptions& opt) {
  cfg["T"] = ds.T;
  cfg["M"] = ds.M;
  cfg["C"] = static_cast<int64_t>(ds.class_names.size());
  if (opt.epochs <= 0 || opt.batch <= 0) fail("epochs and batch must be positive");
  if (ds.count(data::kTrain) == 0) fail(ds.name + ": no training windows");
  if (ds.count(data::kVal) == 0) fail(ds.name + ": no validation windows (prepare the data with a validation part)");
  if (ds.mean.empty()) fail(ds.name + ": the data is not normalised (prepare it with `harvit prepare`)");
  fs::create_directories(opt.out_dir);
  const std::string last_path = opt.out_dir + "/last.safetensors", optim_path = opt.out_dir + "/last.optim.safetensors",
                    best_path = opt.out_dir + "/best.safetensors";
  const int64_t step_size = opt.step_size > 0 ? opt.step_size : std::max(1, opt.epochs / 3);

  auto model_ptr = nn::make_model(cfg);
  nn::Model& model = *model_ptr;
  const int64_t C = model.C();
  Rng rng(opt.seed);
  model.params().init_default(rng);
  optim::AdamW adam(model.params().count(), {opt.lr, 0.9, 0.999, 1e-8, opt.weight_decay});
  optim::StepLR sched{opt.lr, step_size, opt.gamma};
  if (opt.schedule != "step" && opt.schedule != "cosine") fail("--schedule must be step or cosine");
  if (opt.aug_rotate > 0 && ds.M % 3) fail("--aug-rotate needs the axes in groups of 3 (x, y, z), the data has " + std::to_string(ds.M));
  {
    std::vector<float> weights;
    if (opt.class_weights == "balanced") {
      std::vector<int64_t> n(C, 0);
      for (int64_t i : ds.indices(data::kTrain)) n[ds.y[i]]++;
      const double total = static_cast<double>(ds.count(data::kTrain));
      for (int64_t c = 0; c < C; ++c) weights.push_back(n[c] ? static_cast<float>(total / (C * n[c])) : 0.0f);
    } else if (opt.class_weights != "none") {
      fail("--class-weights must be none or balanced");
    }
    model.set_loss_options(static_cast<float>(opt.label_smoothing), weights);
  }

  TrainResult res;
  int start_epoch = 0;
  int64_t start_step = 0;
  double run_loss = 0;
  int64_t run_correct = 0, run_seen = 0;
  std::vector<uint64_t> epoch_rng_state = rng.state();
  const std::string data_id = ds.name + ":" + std::to_string(ds.size()) + ":" + std::to_string(ds.count(data::kTrain));

  nn::CheckpointMeta meta;
  meta.class_names = ds.class_names;
  meta.normalization = {{"mean", ds.mean}, {"std", ds.std}, {"axes", ds.axis_names}};

  if (opt.resume) {
    if (!fs::exists(last_path)) fail(last_path + ": nothing to resume (no last checkpoint in " + opt.out_dir + ")");
    auto ck = nn::load_checkpoint(last_path);
    const json st = ck.meta.extra.value("train_state", json());
    if (st.is_null()) fail(last_path + ": has no training state");
    if (ck.model->config_json() != model.config_json()) fail(last_path + ": model config differs from this run's");
    if (st.at("data") != data_id) fail(last_path + ": was trained on other data (" + st.at("data").get<std::string>() + ")");
    if (st.at("options") != opt.to_json())
      fail(last_path + ": training options differ from the checkpoint's: " + st.at("options").dump());
    std::copy(ck.model->params().values(), ck.model->params().values() + model.params().count(), model.params().values());
    auto of = SafetensorsFile::load(optim_path);
    if (of.metadata().at("optimizer_steps") != st.at("optimizer_steps").dump())
      fail(optim_path + ": does not belong to " + last_path + " (optimizer step counts differ)");
    // AdamW moments per parameter, named like the parameters (independent of the slab layout)
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
    start_epoch = st.at("epoch");
    start_step = st.at("step");
    epoch_rng_state = st.at("epoch_rng").get<std::vector<uint64_t>>();
    run_loss = st.at("run_loss");
    run_correct = st.at("run_correct");
    run_seen = st.at("run_seen");
    for (auto& e : st.at("history")) res.history.push_back(EpochRecord::from_json(e));
    res.best_epoch = st.at("best_epoch");
    res.best_val_acc = st.at("best_val_acc");
    std::printf("resuming from %s: epoch %d, step %lld\n", last_path.c_str(), start_epoch + 1, (long long)start_step);
  }

  auto save_last = [&](int epoch, int64_t step) {
    SafetensorsWriter w;
    for (const auto& p : model.params().infos()) {
      w.add_f32("exp_avg." + p.name, p.shape, adam.m().data() + p.offset);
      w.add_f32("exp_avg_sq." + p.name, p.shape, adam.v().data() + p.offset);
    }
    w.set_metadata("optimizer_steps", std::to_string(adam.steps()));
    w.write(optim_path);
    json hist = json::array();
    for (auto& e : res.history) hist.push_back(e.to_json());
    nn::CheckpointMeta lm = meta;
    lm.extra = {{"command", opt.command},
                {"train_state", {{"epoch", epoch}, {"step", step}, {"epoch_rng", epoch_rng_state},
                                 {"optimizer_steps", adam.steps()}, {"run_loss", run_loss}, {"run_correct", run_correct},
                                 {"run_seen", run_seen}, {"history", hist}, {"best_epoch", res.best_epoch},
                                 {"best_val_acc", res.best_val_acc}, {"data", data_id}, {"options", opt.to_json()}}}};
    nn::save_checkpoint(last_path, model, lm);
  };

  const nn::Precision precision = nn::parse_precision(opt.precision);
  if (precision == nn::Precision::Int8) fail("--precision int8 is for inference (eval, predict); train in fp32 or bf16");
  model.set_precision(precision);  // after the weights are final (init or resume): bf16 rounds them now

  auto train_idx = ds.indices(data::kTrain);
  const int64_t n_train = static_cast<int64_t>(train_idx.size());
  const int64_t steps_per_epoch = (n_train + opt.batch - 1) / opt.batch;
  const bool tty = ::isatty(1);
  std::vector<float> x;
  std::vector<int32_t> y;
  int64_t total_steps_done = 0;
  const auto t_start = std::chrono::steady_clock::now();
  std::printf("training %s (%s) on %s: %lld train / %lld val windows, %d epochs x %lld steps (batch %lld), %d threads\n",
              model.kind().c_str(), nn::precision_name(precision), ds.name.c_str(), (long long)n_train,
              (long long)ds.count(data::kVal), opt.epochs, (long long)steps_per_epoch, (long long)opt.batch, num_threads());
  std::fflush(stdout);

  for (int epoch = start_epoch; epoch < opt.epochs; ++epoch) {
    // The permutation is a function of the RNG state at the epoch start, kept for resume.
    Rng erng(0);
    erng.set_state(epoch_rng_state);
    std::vector<int64_t> perm = train_idx;
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[erng.below(i)]);
    double lr = sched.lr(epoch);
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t first = epoch == start_epoch ? start_step : 0;
    if (first == 0) run_loss = 0, run_correct = 0, run_seen = 0;
    for (int64_t step = first; step < steps_per_epoch; ++step) {
      if (g_interrupted || (opt.max_steps && total_steps_done >= opt.max_steps)) {
        save_last(epoch, step);
        if (tty) std::printf("\n");
        std::printf("%s: saved %s at epoch %d step %lld; continue with --resume\n",
                    g_interrupted ? "interrupted" : "step limit reached", last_path.c_str(), epoch + 1, (long long)step);
        res.interrupted = true;
        return res;
      }
      const int64_t B = std::min<int64_t>(opt.batch, n_train - step * opt.batch);
      gather(ds, perm.data() + step * opt.batch, B, x, y);
      if (opt.aug_scale > 0 || opt.aug_jitter > 0 || opt.aug_rotate > 0 || opt.aug_shift > 0) {
        // A stream per (seed, epoch, step): resume reproduces the same augmented batches.
        Rng arng(splitmix64(opt.seed * 0x9E3779B97F4A7C15ULL ^ (uint64_t(epoch) << 32) ^ uint64_t(step)));
        augment_windows(x.data(), B, ds.T, ds.M, opt, arng);
      }
      if (opt.schedule == "cosine") {
        const double total = double(opt.epochs) * steps_per_epoch, warm = opt.warmup_epochs * steps_per_epoch;
        const double s = double(epoch) * steps_per_epoch + step;
        lr = s < warm ? opt.lr * (s + 1) / warm
                      : 0.5 * opt.lr * (1.0 + std::cos(3.14159265358979323846 * (s - warm) / std::max(1.0, total - warm)));
      }
      model.params().zero_grad();
      const float* logits = model.forward(x.data(), B);
      const float loss = model.loss(y.data());
      for (int64_t b = 0; b < B; ++b) run_correct += argmax(logits + b * C, C) == y[b];
      model.backward(y.data());
      adam.step(model.params().values(), model.params().grads(), lr);
      model.params_changed();
      run_loss += double(loss) * B;
      run_seen += B;
      ++total_steps_done;
      if (tty) {
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double wps = (step - first + 1) * double(opt.batch) / std::max(el, 1e-9);
        const double left = ((opt.epochs - epoch - 1) * double(n_train) + (steps_per_epoch - step - 1) * double(opt.batch)) / wps;
        std::printf("\repoch %d/%d  step %lld/%lld  loss %.4f  %.0f win/s  ETA %s   ", epoch + 1, opt.epochs,
                    (long long)step + 1, (long long)steps_per_epoch, run_loss / run_seen, wps, fmt_time(left).c_str());
        std::fflush(stdout);
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EpochRecord rec;
    rec.epoch = epoch + 1;
    rec.lr = lr;
    rec.train_loss = run_loss / run_seen;
    rec.train_acc = double(run_correct) / run_seen;
    auto val = predict_split(model, ds, data::kVal);
    rec.val_loss = val.loss;
    int64_t vc = 0;
    for (size_t i = 0; i < val.truth.size(); ++i) vc += val.truth[i] == val.pred[i];
    rec.val_acc = double(vc) / val.truth.size();
    rec.seconds = secs;
    rec.windows_per_s = run_seen / std::max(secs, 1e-9);
    res.history.push_back(rec);
    const bool best = rec.val_acc > res.best_val_acc;
    if (best) {
      res.best_val_acc = rec.val_acc;
      res.best_epoch = rec.epoch;
      nn::CheckpointMeta bm = meta;
      bm.extra = {{"command", opt.command}, {"epoch", rec.epoch}, {"val_acc", rec.val_acc}, {"data", data_id},
                  {"options", opt.to_json()}};
      nn::save_checkpoint(best_path, model, bm);
    }
    epoch_rng_state = erng.state();
    run_loss = 0, run_correct = 0, run_seen = 0;
    save_last(epoch + 1, 0);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    if (tty) std::printf("\r");
    std::printf("epoch %3d/%d  lr %.2e  train loss %.4f acc %.4f  val loss %.4f acc %.4f%s  %.0f win/s  %s elapsed\n",
                rec.epoch, opt.epochs, lr, rec.train_loss, rec.train_acc, rec.val_loss, rec.val_acc,
                best ? " *" : "  ", rec.windows_per_s, fmt_time(total).c_str());
    std::fflush(stdout);
  }
  json hist = json::array();
  for (auto& e : res.history) hist.push_back(e.to_json());
  write_file_atomic(opt.out_dir + "/history.json",
                    json{{"history", hist}, {"best_epoch", res.best_epoch}, {"best_val_acc", res.best_val_acc},
                         {"options", opt.to_json()}, {"command", opt.command}}.dump(2));
  return res;
}

}  // namespace harvit::train
