// Inference of the seed ViT (fp32): batch-1 latency (median, p99 over --windows single-window
// forwards) and batch throughput. Prints one JSON line; bench/compare_torch runs it beside PyTorch.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "core/gemm.h"
#include "core/rng.h"
#include "nn/vit.h"

using namespace harvit;

int main(int argc, char** argv) {
  CLI::App app{"harvit inference latency and throughput (seed config)"};
  int64_t windows = 1000, batch = 256;
  int threads = 0;
  app.add_option("--windows", windows, "batch-1 forwards timed")->capture_default_str();
  app.add_option("--batch", batch, "batch for the throughput figure")->capture_default_str();
  app.add_option("--threads", threads, "0 = OpenMP default");
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  nn::VitConfig cfg;
  nn::Vit model(cfg);
  Rng rng(1);
  model.params().init_default(rng);
  const int64_t W = cfg.T * cfg.M;
  std::vector<float> x(std::max<int64_t>(batch, 64) * W);
  for (auto& v : x) v = rng.normal();
  for (int i = 0; i < 50; ++i) model.forward(x.data() + (i % 64) * W, 1);
  std::vector<double> ms;
  for (int64_t i = 0; i < windows; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    model.forward(x.data() + (i % 64) * W, 1);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  model.forward(x.data(), batch);
  int reps = 0;
  double el = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (reps < 5 || el < 2.0) {
    model.forward(x.data(), batch);
    ++reps;
    el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::printf("{\"impl\": \"harvit\", \"threads\": %d, \"b1_median_ms\": %.4f, \"b1_p99_ms\": %.4f, \"batch\": %lld, "
              "\"batch_windows_per_s\": %.1f}\n",
              num_threads(), ms[ms.size() / 2], ms[std::min<size_t>(ms.size() - 1, ms.size() * 99 / 100)],
              (long long)batch, reps * batch / el);
  return 0;
}
