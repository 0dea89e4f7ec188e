// Shared by the benches: the seed-config ViT with seeded parameters, random windows, peak RSS.
#pragma once
#include <sys/resource.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/rng.h"
#include "nn/vit.h"

namespace harvit::bench {

struct SeedModel {
  nn::VitConfig cfg;
  nn::Vit model{cfg};
  std::vector<float> x;      // (windows, 1, T, M), standard normal
  std::vector<int32_t> y;    // (windows), uniform classes
  explicit SeedModel(int64_t windows) {
    Rng rng(1);
    model.params().init_default(rng);
    x.resize(windows * cfg.T * cfg.M);
    y.resize(windows);
    for (auto& v : x) v = rng.normal();
    for (auto& v : y) v = static_cast<int32_t>(rng.below(cfg.C));
  }
};

// Peak resident set size of this process so far, MiB.
inline double peak_rss_mib() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

// The ISA found and the kernels chosen (core/cpu.h), one line: every benchmark prints it.
inline std::string isa_line() { return cpu::summary(); }

// The same as a JSON object ({"cpu": ..., "onednn": ..., "int8_kernel": ..., ...}) for the one-line
// JSON outputs; no ';' inside (bench/compare_torch splits its runs on ';').
inline std::string isa_json() {
  std::string out = "{";
  for (const auto& [k, v] : cpu::summary_fields()) {
    out += (out.size() > 1 ? ", \"" : "\"") + k + "\": \"";
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

}  // namespace harvit::bench
