// `harvit export`: a checkpoint (ViT or CNN) as a model file for other runtimes. One format so far,
// ONNX (deploy/onnx_export.h): input x [N, 1, T, M] raw samples, the checkpoint's normalisation
// inside the graph, outputs logits and probabilities [N, C]. A build configured without
// libonnx-dev still has the subcommand; it then says how to get the export.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "commands.h"
#include "core/tensor.h"
#include "nn/checkpoint.h"
#ifdef HARVIT_HAVE_ONNX
#include "deploy/onnx_export.h"
#endif

namespace harvit::cli {

namespace {

struct ExportArgs {
  std::string model, format = "onnx", out;
};

int run_export(const ExportArgs& a) {
  if (a.format != "onnx") fail("--format '" + a.format + "' is not known: harvit exports onnx");
  if (std::filesystem::is_directory(a.out)) fail(a.out + ": is a folder, expected the file to write (e.g. model.onnx)");
#ifndef HARVIT_HAVE_ONNX
  fail("this harvit was built without ONNX export (libonnx-dev and libprotobuf-dev were not found when it was "
       "configured): install them (bash scripts/deps.sh) and configure and build again");
#else
  auto ck = nn::load_checkpoint(a.model);
  deploy::export_onnx(a.out, *ck.model, ck.meta);
  const nn::Model& m = *ck.model;
  const auto bytes = std::filesystem::file_size(a.out);
  const auto& norm = ck.meta.normalization;
  const bool normalised = norm.is_object() && norm.contains("mean") && norm.contains("std");
  std::printf("exported %s (%lld parameters) from %s to %s: ONNX opset %d, %.1f MB; input x [N, 1, %lld, %lld] raw "
              "samples (%s inside the graph), outputs logits and probabilities [N, %lld]\n",
              m.kind().c_str(), static_cast<long long>(m.params().count()), a.model.c_str(), a.out.c_str(),
              deploy::kOnnxOpset, static_cast<double>(bytes) / 1e6, static_cast<long long>(m.T()),
              static_cast<long long>(m.M()), normalised ? "normalised" : "no normalisation",
              static_cast<long long>(m.C()));
  return 0;
#endif
}

}  // namespace

Runner add_export_command(CLI::App& app) {
  auto args = std::make_shared<ExportArgs>();
  auto* sc = app.add_subcommand("export", "write a checkpoint as a model file for other runtimes (ONNX)");
  sc->add_option("--model", args->model, "checkpoint (.safetensors), ViT or CNN")->required();
  sc->add_option("--format", args->format, "onnx (opset 17; normalisation and softmax inside the graph)")
      ->capture_default_str();
  sc->add_option("--out", args->out, "file to write (written atomically: a temporary file, then renamed)")
      ->required();
  return [args] { return run_export(*args); };
}

}  // namespace harvit::cli
