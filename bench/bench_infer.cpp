// Inference of the seed ViT: batch-1 latency (median, p99 over --windows single-window forwards)
// and batch throughput, in fp32 or int8 (deploy/quantize.h). Batch 1 is timed twice: on the thread
// pool with --threads threads (b1_*), and on the pool-free serial path the streaming recogniser and
// the C API use (b1_serial_*: the calling thread alone, core/threading.h SerialScope; fp32 over
// packed panels). Prints one JSON line ("isa": the CPU features and kernels, core/cpu.h);
// bench/compare_torch runs it beside PyTorch. --stages instead prints where a batch-1 forward's
// time goes (core/stages.h: mean wall time per stage, on the pool and on the serial path).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/gemm.h"
#include "core/stages.h"
#include "core/threading.h"
#include "deploy/quantize.h"

using namespace harvit;

int main(int argc, char** argv) {
  CLI::App app{"harvit inference latency and throughput (seed config)"};
  int64_t windows = 1000, batch = 256;
  int threads = 0;
  std::string precision = "fp32";
  app.add_option("--windows", windows, "batch-1 forwards timed")->capture_default_str();
  app.add_option("--batch", batch, "batch for the throughput figure")->capture_default_str();
  app.add_option("--threads", threads, "0 = OpenMP default");
  app.add_option("--precision", precision, "fp32 | int8")->capture_default_str();
  bool stage_table = false;
  app.add_flag("--stages", stage_table, "print the batch-1 forward's time per stage (pool, then serial) and exit");
  CLI11_PARSE(app, argc, argv);
  set_num_threads(threads);
  bench::SeedModel s(std::max<int64_t>(batch, 64));
  auto q = deploy::convert_precision(s.model, precision);
  nn::Model& model = q ? *q : s.model;
  model.prepare_inference();  // as deploy::Classifier does
  const int64_t W = s.cfg.T * s.cfg.M;
  const float* x = s.x.data();
  for (int i = 0; i < 50; ++i) model.forward(x + (i % 64) * W, 1);
  auto time_b1 = [&] {  // sorted batch-1 times, ms
    std::vector<double> ms;
    for (int64_t i = 0; i < windows; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      model.forward(x + (i % 64) * W, 1);
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms;
  };
  auto p99 = [](const std::vector<double>& v) { return v[std::min<size_t>(v.size() - 1, v.size() * 99 / 100)]; };
  if (stage_table) {
    auto print = [&](const char* path) {
      stages::clear();
      stages::enable(true);
      const std::vector<double> ms = time_b1();
      stages::enable(false);
      double sum = 0;
      std::printf("%s, %d thread(s), %s: median %.1f us per forward\n", precision.c_str(),
                  serial_mode() ? 1 : num_threads(), path, 1e3 * ms[ms.size() / 2]);
      for (const stages::Row& r : stages::table()) {
        std::printf("  %-40s %8.1f us\n", r.name.c_str(), 1e6 * r.seconds / r.count);
        sum += 1e6 * r.seconds / r.count;
      }
      std::printf("  %-40s %8.1f us (mean; the stages' clock adds a little)\n", "sum", sum);
    };
    print("pool");
    SerialScope one_thread;
    print("serial");
    std::printf("isa: %s\n", bench::isa_json().c_str());
    return 0;
  }
  const std::vector<double> ms = time_b1();
  std::vector<double> serial;
  {
    SerialScope one_thread;
    for (int i = 0; i < 50; ++i) model.forward(x + (i % 64) * W, 1);
    serial = time_b1();
  }
  model.forward(x, batch);
  int reps = 0;
  double el = 0;
  auto t0 = std::chrono::steady_clock::now();
  while (reps < 5 || el < 2.0) {
    model.forward(x, batch);
    ++reps;
    el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::printf("{\"impl\": \"harvit\", \"precision\": \"%s\", \"threads\": %d, \"b1_median_ms\": %.4f, "
              "\"b1_p99_ms\": %.4f, \"b1_serial_median_ms\": %.4f, \"b1_serial_p99_ms\": %.4f, \"batch\": %lld, "
              "\"batch_windows_per_s\": %.1f, \"isa\": %s}\n",
              precision.c_str(), num_threads(), ms[ms.size() / 2], p99(ms), serial[serial.size() / 2], p99(serial),
              (long long)batch, reps * batch / el,
              bench::isa_json().c_str());
  return 0;
}
