// `harvit explain`: what the ViT attends to in chosen windows of a prepared dataset, one PNG per
// window (its signals, each block's attention and the attention rollout on the same time axis;
// train/explain.h) and explain.json with the numbers. docs/explain.md shows and explains them.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "core/gemm.h"
#include "data/dataset.h"
#include "train/explain.h"

namespace harvit::cli {

namespace {

struct ExplainArgs {
  std::string model, data;
  train::ExplainOptions opt;
  int threads = 0;
};

int run_explain(const ExplainArgs& a) {
  set_num_threads(a.threads);
  const auto ds = data::load_dataset(a.data);
  const auto wins = train::explain_checkpoint(a.model, ds, a.opt);
  for (const auto& w : wins)
    std::printf("%-5s %s window %lld (file window %lld): predicted %s p=%.3f, true %s -> %s\n", w.why.c_str(),
                a.opt.split.c_str(), static_cast<long long>(w.split_index), static_cast<long long>(w.file_index),
                ds.class_names[w.pred].c_str(), w.prob, ds.class_names[w.truth].c_str(), w.png.c_str());
  std::printf("wrote %zu pictures and %s/explain.json\n", wins.size(), a.opt.out_dir.c_str());
  return 0;
}

}  // namespace

Runner add_explain_command(CLI::App& app) {
  auto a = std::make_shared<ExplainArgs>();
  auto* sc = app.add_subcommand("explain", "pictures of what the ViT attends to in chosen windows (attention rollout)");
  sc->add_option("--model", a->model, "ViT checkpoint (.safetensors)")->required();
  sc->add_option("--data", a->data, "dataset file from `harvit prepare`")->required();
  sc->add_option("--index", a->opt.indices, "window by its index within the split (repeatable)");
  sc->add_option("--errors", a->opt.errors, "also the N most confident errors of the split")->capture_default_str();
  sc->add_option("--per-class", a->opt.per_class, "also the N most confident correct windows of every true class (else its best misclassified)")
      ->capture_default_str();
  sc->add_option("--split", a->opt.split, "train | val | test")
      ->check(CLI::IsMember({"train", "val", "test"}))
      ->capture_default_str();
  sc->add_option("--out", a->opt.out_dir, "folder for the PNGs and explain.json")->capture_default_str();
  sc->add_option("--threads", a->threads, "threads (default: all cores)");
  return [a] { return run_explain(*a); };
}

}  // namespace harvit::cli
