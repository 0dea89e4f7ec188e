// The streaming recogniser's cost per hop: a seed-config ViT (or the CNN baseline) with M axes,
// fed sample by sample as a sensor callback would, on the calling thread (threads = 1, serial
// mode: no pool). Times every push that ends in a classification (ring copy, normalisation,
// forward, softmax, smoothing) and prints median / p99 / max in ms, the share of one core at a
// hop of --hop samples at --rate Hz (from the thread's CPU time, which another program's load on
// the machine inflates less than the wall clock), and beside it the plain batch-1 forward on the OpenMP pool
// with one thread (the path `harvit predict` takes for one window), one JSON line with the ISA.
//   bench_stream [--model vit|cnn] [--M 3] [--precision fp32|int8] [--hops 1000] [--hop 64] [--rate 50]
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/gemm.h"
#include "deploy/quantize.h"
#include "deploy/stream.h"
#include "nn/checkpoint.h"
#include "nn/cnn.h"

using namespace harvit;
using Clock = std::chrono::steady_clock;

namespace {
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}
struct Stats {
  double median, p99, max;
};
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v[v.size() / 2], v[std::min<size_t>(v.size() - 1, v.size() * 99 / 100)], v.back()};
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"harvit streaming recogniser: per-hop latency on one thread"};
  std::string kind = "vit", precision = "fp32";
  int64_t M = 3, hops = 1000, hop = 64;
  double rate = 50;
  app.add_option("--model", kind, "vit | cnn")->capture_default_str();
  app.add_option("--M", M, "sensor axes")->capture_default_str();
  app.add_option("--precision", precision, "fp32 | int8")->capture_default_str();
  app.add_option("--hops", hops, "classifications timed")->capture_default_str();
  app.add_option("--hop", hop, "samples per hop")->capture_default_str();
  app.add_option("--rate", rate, "sampling rate (Hz), for the share of a core")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // A checkpoint of the seed's sizes with seeded parameters, written to a temporary file.
  const auto path = std::filesystem::temp_directory_path() / ("harvit_bench_stream_" + std::to_string(::getpid()) + ".safetensors");
  std::unique_ptr<nn::Model> model;
  if (kind == "vit") {
    nn::VitConfig c;
    c.M = M;
    model = std::make_unique<nn::Vit>(c);
  } else if (kind == "cnn") {
    nn::CnnConfig c;
    c.M = M;
    model = std::make_unique<nn::Cnn>(c);
  } else {
    std::fprintf(stderr, "bench_stream: --model must be vit or cnn\n");
    return 2;
  }
  Rng rng(1);
  model->params().init_default(rng);
  nn::CheckpointMeta meta;
  meta.normalization = {{"mean", std::vector<float>(M, 0.0f)}, {"std", std::vector<float>(M, 1.0f)}};
  nn::save_checkpoint(path.string(), *model, meta);
  const int64_t T = model->T();

  deploy::StreamOptions o;
  o.precision = precision;
  o.hop = hop;
  o.smooth = 3;
  std::vector<float> x((T + hops * hop) * M);
  for (auto& v : x) v = rng.normal();
  std::vector<double> push_ms, clf_ms, cpu_ms;
  {
    deploy::StreamRecognizer s(path.string(), o);
    s.push(x.data(), T);  // the first window
    deploy::Decision d;
    while (s.next(d)) {}
    for (int64_t h = 0; h < hops; ++h) {
      const float* block = x.data() + (T + h * hop) * M;
      for (int64_t i = 0; i + 1 < hop; ++i) s.push(block + i * M, 1);
      const auto t0 = Clock::now();
      const double c0 = thread_cpu_ms();
      s.push(block + (hop - 1) * M, 1);  // this sample completes the hop
      cpu_ms.push_back(thread_cpu_ms() - c0);
      push_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      clf_ms.push_back(s.last_latency_s() * 1e3);
      while (s.next(d)) {}
    }
  }
  // The batch-1 forward on the pool, one thread.
  set_num_threads(1);
  auto q = deploy::convert_precision(*model, precision);
  nn::Model& m = q ? *q : *model;
  for (int i = 0; i < 50; ++i) m.forward(x.data() + (i % 64) * M, 1);
  std::vector<double> pool_ms;
  for (int64_t h = 0; h < hops; ++h) {
    const auto t0 = Clock::now();
    m.forward(x.data() + (h % 64) * hop * M, 1);
    pool_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::filesystem::remove(path);
  const Stats p = stats(push_ms), c = stats(clf_ms), f = stats(pool_ms), u = stats(cpu_ms);
  const double hop_ms = hop * 1000.0 / rate;
  std::printf("{\"impl\": \"harvit-stream\", \"model\": \"%s\", \"M\": %lld, \"precision\": \"%s\", \"hop\": %lld, "
              "\"hop_ms\": %.1f, \"hops\": %lld, \"push_median_ms\": %.4f, \"push_p99_ms\": %.4f, \"push_max_ms\": %.4f, "
              "\"classify_median_ms\": %.4f, \"push_cpu_median_ms\": %.4f, \"push_cpu_p99_ms\": %.4f, \"core_share\": %.5f, \"pool1_forward_median_ms\": %.4f, "
              "\"pool1_forward_p99_ms\": %.4f, \"peak_rss_mib\": %.1f, \"isa\": %s}\n",
              kind.c_str(), (long long)M, precision.c_str(), (long long)hop, hop_ms, (long long)hops, p.median, p.p99,
              p.max, c.median, u.median, u.p99, u.median / hop_ms, f.median, f.p99, bench::peak_rss_mib(), bench::isa_json().c_str());
  return 0;
}
