// Training throughput of the seed ViT (forward + backward + AdamW), windows per second, and the
// process's peak resident memory. Prints one JSON line; bench/compare_torch runs it beside the
// PyTorch reference.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "bench_common.h"
#include "core/gemm.h"
#include "optim/adamw.h"

using namespace harvit;

int main(int argc, char** argv) {
  CLI::App app{"harvit training throughput (seed config)"};
  int64_t batch = 128;
  int steps = 10, warmup = 2, threads = 0;
  app.add_option("--batch", batch)->capture_default_str();
  app.add_option("--steps", steps)->capture_default_str();
  app.add_option("--warmup", warmup)->capture_default_str();
  app.add_option("--threads", threads, "0 = OpenMP default");
  std::string precision = "fp32";
  app.add_option("--precision", precision, "fp32 | bf16 (mixed precision, needs AVX512-BF16)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);

  bench::SeedModel s(batch);
  auto& model = s.model;
  model.set_precision(nn::parse_precision(precision));
  optim::AdamW opt(model.params().count(), optim::AdamWConfig{});
  auto step = [&] {
    model.params().zero_grad();
    model.forward(s.x.data(), batch);
    model.loss(s.y.data());
    model.backward(s.y.data());
    opt.step(model.params().values(), model.params().grads(), 5e-4);
    model.params_changed();
  };
  for (int i = 0; i < warmup; ++i) step();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("{\"impl\": \"harvit\", \"precision\": \"%s\", \"threads\": %d, \"batch\": %lld, \"steps\": %d, \"seconds\": %.4f, "
              "\"windows_per_s\": %.2f, \"peak_rss_mib\": %.1f, \"isa\": %s}\n",
              precision.c_str(), num_threads(), (long long)batch, steps, dt, batch * steps / dt, bench::peak_rss_mib(),
              bench::isa_json().c_str());
  return 0;
}
