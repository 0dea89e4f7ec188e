// harvit: one CLI, subcommands. Each subcommand is a thin layer over the library.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "core/gemm.h"
#include "nn/checkpoint.h"
#include "nn/vit.h"

using namespace harvit;

namespace {

void add_vit_options(CLI::App* cmd, nn::VitConfig& c) {
  cmd->add_option("--T", c.T, "window length in time steps")->capture_default_str();
  cmd->add_option("--M", c.M, "sensor axes")->capture_default_str();
  cmd->add_option("--C", c.C, "classes")->capture_default_str();
  cmd->add_option("--P", c.P, "patch length")->capture_default_str();
  cmd->add_option("--D", c.D, "embedding width")->capture_default_str();
  cmd->add_option("--H", c.H, "attention heads")->capture_default_str();
  cmd->add_option("--A", c.A, "width of one head")->capture_default_str();
  cmd->add_option("--L", c.L, "transformer blocks")->capture_default_str();
  cmd->add_option("--hidden", c.hidden, "dense tower width")->capture_default_str();
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(s[i]);
  }
  return v < 0 ? "-" + out : out;
}

int cmd_info(const nn::VitConfig& cfg) {
  const auto rows = nn::vit_summary(cfg);
  std::printf("Sensor ViT  T=%lld M=%lld C=%lld P=%lld D=%lld H=%lld A=%lld L=%lld hidden=%lld\n",
              (long long)cfg.T, (long long)cfg.M, (long long)cfg.C, (long long)cfg.P,
              (long long)cfg.D, (long long)cfg.H, (long long)cfg.A, (long long)cfg.L,
              (long long)cfg.hidden);
  std::printf("input [1, 1, %lld, %lld]\n\n", (long long)cfg.T, (long long)cfg.M);
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
  nn::Vit model(cfg);  // cross-check the table against the real parameter slab
  if (model.params().count() != tp) {
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
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"harvit: human activity recognition with a sensor Vision Transformer"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "harvit 0.1.0");

  nn::VitConfig info_cfg;
  std::string info_model;
  auto* info = app.add_subcommand("info", "print the model summary: shapes, parameters, multiply-adds");
  add_vit_options(info, info_cfg);
  info->add_option("--model", info_model, "read the config from this checkpoint instead");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*info) {
      if (!info_model.empty()) return cmd_info(nn::load_checkpoint(info_model).model->config());
      return cmd_info(info_cfg);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "harvit: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
