// harvit: one CLI, subcommands. Each subcommand is a thin layer over the library.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "commands.h"
#ifdef HARVIT_HAVE_MPI
#include "core/comm_mpi.h"
#endif
#include "core/cpu.h"
#include "core/gemm.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "data/readers.h"
#include "deploy/predictor.h"
#include "deploy/quantize.h"
#include "nn/checkpoint.h"
#include "nn/cnn.h"
#include "nn/vit.h"
#include "train/recipes.h"
#include "train/report.h"
#include "train/trainer.h"

using namespace harvit;

namespace {

void add_vit_options(CLI::App* cmd, nn::VitConfig& c) {
  cmd->add_option("--T", c.T, "window length in time steps")->capture_default_str();
  cmd->add_option("--M", c.M, "sensor axes")->capture_default_str();
  cmd->add_option("--C", c.C, "classes")->capture_default_str();
  cli::add_vit_shape_options(cmd, c);
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(s[i]);
  }
  return v < 0 ? "-" + out : out;
}

int cmd_info(const nn::Model& model) {
  const auto rows = model.summary();
  std::printf("%s  %s\n", model.kind() == "vit" ? "Sensor ViT" : "CNN baseline", model.config_json().dump().c_str());
  std::printf("input [1, 1, %lld, %lld]\n\n", (long long)model.T(), (long long)model.M());
  std::printf("%-28s %-20s %12s %16s %16s\n", "layer", "output shape", "params", "MACs linear",
              "MACs attention");
  int64_t tp = 0, tl = 0, ta = 0;
  for (const auto& r : rows) {
    std::printf("%-28s %-20s %12s %16s %16s\n", r.name.c_str(), shape_str(r.out_shape).c_str(),
                with_commas(r.params).c_str(), with_commas(r.macs_linear).c_str(),
                with_commas(r.macs_attention).c_str());
    tp += r.params;
    tl += r.macs_linear;
    ta += r.macs_attention;
  }
  std::printf("%-28s %-20s %12s %16s %16s\n\n", "total", "", with_commas(tp).c_str(),
              with_commas(tl).c_str(), with_commas(ta).c_str());
  if (model.params().count() != tp) {  // the table must agree with the real parameter slab
    std::fprintf(stderr, "internal error: summary counts %lld params, model has %lld\n",
                 (long long)tp, (long long)model.params().count());
    return 1;
  }
  std::printf("parameters:                         %s\n", with_commas(tp).c_str());
  std::printf("multiply-adds, conv + linear:       %.2f M  (what thop reports as FLOPs, before its "
              "small LayerNorm/activation terms)\n", tl / 1e6);
  std::printf("multiply-adds, attention matmuls:   %.2f M\n", ta / 1e6);
  std::printf("multiply-adds per window, total:    %.2f M  (training costs about 3x: ~%.0f MFLOP)\n",
              (tl + ta) / 1e6, 6.0 * (tl + ta) / 1e6);
  std::printf("\n%s\n", cpu::summary().c_str());  // the ISA found and the kernels chosen
  return 0;
}

struct PrepareArgs {
  std::string dataset, data, out, split;
  data::SplitOptions so;
  data::WindowOptions wo;
  std::string test_subjects, val_subjects;
  bool transitions = false;
  data::CsvArgs csv;
};

// The --csv-* options of prepare and predict (for predict the label column is optional and adds
// a "true" column; the axes must be given in the model's axis order).
void add_csv_options(CLI::App* cmd, data::CsvArgs& a) {
  cmd->add_option("--csv-subject", a.subject, "csv: subject column");
  cmd->add_option("--csv-label", a.label, "csv: label column");
  cmd->add_option("--csv-time", a.time, "csv: time column");
  cmd->add_option("--csv-time-unit", a.time_unit, "csv: s | ms | us | ns")->capture_default_str();
  cmd->add_option("--csv-axes", a.axes, "csv: comma-separated axis columns");
  cmd->add_option("--csv-rate", a.rate_hz, "csv: sampling rate in Hz")->capture_default_str();
  cmd->add_option("--csv-delimiter", a.delimiter, "csv: field separator")->capture_default_str();
}

int cmd_prepare(PrepareArgs& a) {
  using namespace data;
  const auto t0 = std::chrono::steady_clock::now();
  Dataset ds = read_dataset(a.dataset, a.data, {a.transitions, a.csv, a.wo},
                            [](const std::string& note) { std::printf("%s", note.c_str()); });
  if (a.split.empty()) a.split = ds.info.value("given_split", false) ? "given" : "subject";
  a.so.kind = a.split;
  a.so.test_subjects = cli::parse_int_list(a.test_subjects, "--test-subjects");
  a.so.val_subjects = cli::parse_int_list(a.val_subjects, "--val-subjects");
  apply_split(ds, a.so);
  fit_normalize(ds);
  save_dataset(a.out, ds);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s", dataset_summary(ds).c_str());
  std::printf("split: %s\nnormalisation (fitted on train):", ds.info["split"].dump().c_str());
  for (int64_t m = 0; m < ds.M; ++m) std::printf(" %s %.4g/%.4g", ds.axis_names[m].c_str(), ds.mean[m], ds.std[m]);
  std::printf("\nwrote %s in %.2f s\n", a.out.c_str(), secs);
  return 0;
}

int cmd_train(const std::string& data_path, const nlohmann::json& model_cfg, train::TrainOptions opt, Comm& comm) {
  auto ds = data::load_dataset(data_path);
  train::install_interrupt_handler();
  cli::note_mpirun_stop_timeout(comm);
  auto res = train::train_model(ds, model_cfg, opt, comm);
  if (res.interrupted) return 130 * (opt.max_steps == 0);
  if (!comm.root()) return 0;
  std::printf("best validation accuracy %.4f at epoch %d: %s/best.safetensors\n", res.best_val_acc, res.best_epoch,
              opt.out_dir.c_str());
  return 0;
}

struct PredictArgs {
  std::string model, input, format = "auto", output = "csv", out, precision = "fp32";
  int64_t stride = 0;
  data::CsvArgs csv;  // the --csv-* options
};

int cmd_predict(const PredictArgs& a) {
  deploy::Predictor pred(a.model, a.precision);
  const std::string fmt = a.format == "auto" ? data::detect_recording_format(a.input) : a.format;
  const data::RawData raw = data::read_recordings(fmt, a.input, a.csv, /*transitions=*/true);
  if (raw.report.total_skipped()) std::fprintf(stderr, "%s", raw.report.summary().c_str());
  const int64_t stride = a.stride > 0 ? a.stride : std::max<int64_t>(1, pred.window() / 2);
  auto preds = pred.predict(raw, stride);
  const auto& cls = pred.class_names();
  std::ofstream file;
  if (!a.out.empty()) {
    file.open(a.out);
    if (!file) fail(a.out + ": cannot open for writing");
  }
  std::ostream& os = a.out.empty() ? std::cout : file;
  if (a.output == "csv") {
    os << "source,subject,start,start_time_ns,predicted,probability,true";
    for (auto& c : cls) os << ",p_" << c;
    os << "\n";
  } else if (a.output != "jsonl") {
    fail("--output must be csv or jsonl");
  }
  int64_t known = 0, correct = 0, unknown = 0;
  char buf[64];
  for (const auto& p : preds) {
    const std::string truth = p.truth >= 0 ? cls[p.truth] : "";
    if (p.truth >= 0) ++known, correct += p.truth == p.label;
    unknown += p.unknown;
    if (a.output == "csv") {
      std::snprintf(buf, sizeof buf, "%.4f", p.probs[p.label]);
      os << p.source << "," << p.subject << "," << p.start << "," << p.start_time_ns << ","
         << (p.unknown ? std::string("unknown") : cls[p.label]) << ","
         << buf << "," << truth;
      for (float v : p.probs) {
        std::snprintf(buf, sizeof buf, ",%.4f", v);
        os << buf;
      }
      os << "\n";
    } else {
      nlohmann::json j{{"source", p.source}, {"subject", p.subject}, {"start", p.start}, {"predicted", p.unknown ? std::string("unknown") : cls[p.label]},
                       {"probability", p.probs[p.label]}, {"probs", p.probs}};
      if (p.start_time_ns >= 0) j["start_time_ns"] = p.start_time_ns;
      if (p.truth >= 0) j["true"] = truth;
      os << j.dump() << "\n";
    }
  }
  std::fprintf(stderr, "%zu windows of %lld samples (stride %lld) from %zu streams", preds.size(),
               (long long)pred.window(), (long long)stride, raw.streams.size());
  if (known) std::fprintf(stderr, "; accuracy on the %lld labelled windows: %.4f", (long long)known, double(correct) / known);
  if (unknown) std::fprintf(stderr, "; %lld below the calibrated threshold (\"unknown\")", (long long)unknown);
  std::fprintf(stderr, "\n");
  return 0;
}

int cmd_eval(const std::string& model, const std::string& data_path, train::EvalOptions eo, std::string out_dir,
             const std::string& command) {
  namespace fs = std::filesystem;
  auto ds = data::load_dataset(data_path);
  if (out_dir.empty()) out_dir = fs::path(model).parent_path().string();
  if (out_dir.empty()) out_dir = ".";
  auto r = train::evaluate_checkpoint(model, ds, eo);
  std::printf("%s\n", r.text.c_str());
  nlohmann::json history;
  const std::string hist_path = (fs::path(model).parent_path() / "history.json").string();
  if (fs::exists(hist_path)) {
    std::ifstream in(hist_path);
    history = nlohmann::json::parse(in).value("history", nlohmann::json());
  }
  const std::string report = train::write_report(out_dir, r, history, command);
  std::printf("report: %s\n", report.c_str());
  return 0;
}

}  // namespace

namespace {
Comm* g_world = &Comm::local();
}
Comm& cli::job_comm() { return *g_world; }

int main(int argc, char** argv) {
#ifdef HARVIT_HAVE_MPI
  g_world = &mpi_world(&argc, &argv);  // MPI's world when started by mpirun, else one process
#endif
  Comm& world = *g_world;
#ifndef HARVIT_HAVE_MPI
  // The world size a launcher announces: OpenMPI's mpirun; MPICH's and Intel MPI's mpiexec (hydra)
  // and srun with PMI-2 (PMI_SIZE).
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* n = std::getenv(var); n && std::atoi(n) > 1) {
      std::fprintf(stderr, "harvit: error: this harvit was built without MPI (libopenmpi-dev was not found at "
                           "configure time): under mpirun it would run %s independent copies (%s=%s); rebuild "
                           "with MPI or start it without mpirun\n", n, var, n);
      return 2;
    }
#endif
  CLI::App app{"harvit: human activity recognition with a sensor Vision Transformer"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "harvit 0.1.0");

  nn::VitConfig info_cfg;
  nn::CnnConfig info_cnn;
  std::string info_model, info_arch = "vit", info_channels = "64,128,128";
  auto* info = app.add_subcommand("info", "print the model summary: shapes, parameters, multiply-adds");
  add_vit_options(info, info_cfg);
  info->add_option("--arch", info_arch, "vit | cnn")->capture_default_str();
  info->add_option("--channels", info_channels, "cnn: channels of the conv layers")->capture_default_str();
  info->add_option("--kernel", info_cnn.kernel, "cnn: kernel size (odd)")->capture_default_str();
  info->add_option("--model", info_model, "read the config from this checkpoint instead");

  std::string command;
  for (int i = 0; i < argc; ++i) command += (i ? " " : "") + std::string(argv[i]);

  PrepareArgs pa;
  auto* prep = app.add_subcommand("prepare", "turn recordings into normalised windows with honest splits");
  prep->add_option("--dataset", pa.dataset, "wisdm | wisdm-npy | uci-har | hapt | csv")->required();
  prep->add_option("--data", pa.data, "file or folder with the recordings")->required();
  prep->add_option("--out", pa.out, "dataset file to write")->required();
  prep->add_option("--split", pa.split, "chrono | subject | loso | given (default: given where the data has one, else subject)");
  prep->add_option("--train-frac", pa.so.train, "chrono: fraction of each run's windows for training")->capture_default_str();
  prep->add_option("--val-frac", pa.so.val, "chrono: fraction for validation (test = the rest)")->capture_default_str();
  prep->add_option("--test-subjects", pa.test_subjects, "subject: comma-separated test subjects");
  prep->add_option("--val-subjects", pa.val_subjects, "subject/given: comma-separated validation subjects");
  prep->add_option("--test-fraction", pa.so.test_fraction, "subject: fraction of subjects held out for test")->capture_default_str();
  prep->add_option("--val-fraction", pa.so.val_fraction, "validation fraction (of training subjects, or windows)")->capture_default_str();
  prep->add_option("--fold", pa.so.fold, "loso: index of the held-out subject (sorted)")->capture_default_str();
  prep->add_option("--val-by", pa.so.val_by, "given: subject | random | auto")->capture_default_str();
  prep->add_option("--seed", pa.so.seed, "seed for the split")->capture_default_str();
  prep->add_option("--window", pa.wo.length, "window length (samples)")->capture_default_str();
  prep->add_option("--stride", pa.wo.stride, "window stride (samples)")->capture_default_str();
  prep->add_option("--max-gap", pa.wo.max_gap_s, "seconds; a larger time gap starts a new run (default 5 sample periods)");
  prep->add_flag("--transitions", pa.transitions, "hapt: keep the 6 postural transitions as classes");
  add_csv_options(prep, pa.csv);

  cli::TrainArgs ta;
  std::string train_data;
  ta.opt.out_dir = "runs/vit";
  auto* tr = app.add_subcommand("train", "train a model on a prepared dataset (the seed's recipe by default); "
                                         "under mpirun, data-parallel over the ranks");
  tr->add_option("--data", train_data, "dataset file from `harvit prepare`")->required();
  cli::add_train_options(tr, ta);
  tr->add_option("--out", ta.opt.out_dir, "run folder")->capture_default_str();
  tr->add_flag("--resume", ta.opt.resume, "continue the run in --out from its last checkpoint");
  tr->add_option("--max-steps", ta.opt.max_steps, "stop (and save for --resume) after this many steps");

  std::string ev_model, ev_data, ev_out;
  train::EvalOptions eo;
  bool no_latency = false;
  int ev_threads = 0;
  auto* ev = app.add_subcommand("eval", "the seed's result table, pictures and report.md for a checkpoint");
  ev->add_option("--model", ev_model, "checkpoint (.safetensors)")->required();
  ev->add_option("--data", ev_data, "dataset file from `harvit prepare`")->required();
  ev->add_option("--split", eo.split, "train | val | test")->capture_default_str();
  ev->add_option("--out", ev_out, "report folder (default: the checkpoint's folder)");
  ev->add_option("--latency-windows", eo.latency_windows, "batch-1 forwards timed")->capture_default_str();
  ev->add_flag("--no-latency", no_latency, "skip the timing");
  ev->add_option("--threads", ev_threads, "threads (default: all cores)");
  ev->add_option("--precision", eo.precision, "fp32 | bf16 | int8 (bf16, int8 also report the fp32 accuracy)")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
      ->capture_default_str();

  PredictArgs pr;
  auto* pc = app.add_subcommand("predict", "label the windows of a raw recording with a checkpoint");
  pc->add_option("--model", pr.model, "checkpoint (.safetensors)")->required();
  pc->add_option("--input", pr.input, "recording: WISDM raw .txt, HAPT RawData folder, or CSV")->required();
  pc->add_option("--format", pr.format, "auto | wisdm | hapt | csv")->capture_default_str();
  pc->add_option("--stride", pr.stride, "window stride in samples (default: half a window)");
  pc->add_option("--output", pr.output, "csv | jsonl")->capture_default_str();
  pc->add_option("--precision", pr.precision, "fp32 | bf16 | int8")
      ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
      ->capture_default_str();
  pc->add_option("--out", pr.out, "write here instead of standard output");
  add_csv_options(pc, pr.csv);

  const cli::Runner run_stream = cli::add_stream_command(app);
  const cli::Runner run_replay = cli::add_replay_command(app);
  const cli::Runner run_export = cli::add_export_command(app);
  const cli::Runner run_explain = cli::add_explain_command(app);
  const cli::Runner run_calibrate = cli::add_calibrate_command(app);
  const cli::Runner run_openset = cli::add_openset_command(app);
  const cli::Runner run_cv = cli::add_cv_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  // Under mpirun only train and cv share the work; any other command would run N times and race
  // on its output files.
  if (world.distributed() && !*tr && !app.got_subcommand("cv")) {
    if (world.root())
      std::fprintf(stderr, "harvit: error: `harvit %s` runs in one process; under mpirun only train and cv "
                           "spread their work over the ranks (start it without mpirun)\n",
                   app.get_subcommands().front()->get_name().c_str());
    return 2;
  }
  try {
    if (*info) {
      if (!info_model.empty()) return cmd_info(*nn::load_checkpoint(info_model).model);
      if (info_arch == "cnn") {
        info_cnn.T = info_cfg.T, info_cnn.M = info_cfg.M, info_cnn.C = info_cfg.C;
        info_cnn.channels.clear();
        for (int32_t c : cli::parse_int_list(info_channels, "--channels")) info_cnn.channels.push_back(c);
        return cmd_info(nn::Cnn(info_cnn));
      }
      if (info_arch != "vit") fail("--arch must be vit or cnn");
      return cmd_info(nn::Vit(info_cfg));
    }
    if (*prep) return cmd_prepare(pa);
    if (app.got_subcommand("stream")) return run_stream();
    if (app.got_subcommand("replay")) return run_replay();
    if (app.got_subcommand("export")) return run_export();
    if (app.got_subcommand("explain")) return run_explain();
    if (app.got_subcommand("calibrate")) return run_calibrate();
    if (app.got_subcommand("openset")) return run_openset();
    if (app.got_subcommand("cv")) return run_cv();
    if (*pc) return cmd_predict(pr);
    if (*tr) {
      set_num_threads(cli::threads_for(world, ta.threads));
      ta.resolve(tr);
      ta.opt.command = command;
      return cmd_train(train_data, ta.model_config(), ta.opt, world);
    }
    if (*ev) {
      set_num_threads(ev_threads);
      eo.latency = !no_latency;
      if (eo.precision != "fp32")
        eo.convert = [p = eo.precision](const nn::Model& m) { return deploy::convert_precision(m, p); };
      return cmd_eval(ev_model, ev_data, eo, ev_out, command);
    }
  } catch (const CollectiveError& e) {  // every rank is here with the same message
    if (world.root()) std::fprintf(stderr, "harvit: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    // Under mpirun the other ranks may be waiting in a collective: end them all, saying why.
    if (world.distributed()) world.abort(e.what());
    std::fprintf(stderr, "harvit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
