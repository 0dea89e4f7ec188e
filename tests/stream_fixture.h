// Small checkpoints for the streaming tests: a ViT and a CNN with fixed parameters, class names
// and normalisation statistics far from zero mean / unit std (so a path that skipped the
// z-score would be visibly wrong), and sensor-like samples.
#pragma once
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.h"
#include "fixture_util.h"
#include "nn/checkpoint.h"
#include "nn/cnn.h"
#include "nn/vit.h"

namespace harvit::test {

inline const std::vector<float> kStreamMean = {9.0f, -4.0f, 2.5f}, kStreamStd = {3.0f, 0.5f, 6.0f};

// Writes the checkpoint of `kind` ("vit" | "cnn", window T = 32, 3 axes, 4 classes) into dir.
// full_size: the seed's sizes instead (T = 128, D = 256, ...; CNN 64-128-128), whose loops and
// products are big enough to take the thread pool and oneDNN's blocked GEMM outside serial mode.
inline std::string write_stream_checkpoint(const std::filesystem::path& dir, const std::string& kind,
                                           bool full_size = false) {
  std::filesystem::create_directories(dir);
  nn::CheckpointMeta meta;
  meta.class_names = {"Walking", "Jogging", "Sitting", "Standing"};
  meta.normalization = {{"mean", kStreamMean}, {"std", kStreamStd}, {"axes", {"x", "y", "z"}}};
  const std::string path = (dir / (kind + ".safetensors")).string();
  if (kind == "vit") {
    nn::VitConfig c;
    c.T = 32; c.M = 3; c.C = 4; c.P = 4; c.D = 32; c.H = 2; c.A = 16; c.L = 2; c.hidden = 64;
    if (full_size) c = nn::VitConfig{}, c.C = 4;
    nn::Vit m(c);
    fixture_params(m, 7);
    nn::save_checkpoint(path, m, meta);
  } else {
    nn::CnnConfig c;
    c.T = 32; c.M = 3; c.C = 4; c.channels = {16, 32}; c.kernel = 5;
    if (full_size) c = nn::CnnConfig{}, c.C = 4;
    nn::Cnn m(c);
    Rng rng(3);
    float* w = m.params().values();
    for (int64_t i = 0; i < m.params().count(); ++i) w[i] = 0.3f * rng.normal();
    nn::save_checkpoint(path, m, meta);
  }
  return path;
}

// n samples (n, 3) in sensor units whose activity changes every 40 samples.
inline std::vector<float> stream_samples(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x;
  for (int64_t t = 0; t < n; ++t) {
    const float f = 0.2f + 0.15f * static_cast<float>((t / 40) % 3);
    for (int m = 0; m < 3; ++m)
      x.push_back(kStreamMean[m] + kStreamStd[m] * (std::sin(f * t + m) + 0.3f * rng.normal()));
  }
  return x;
}

inline std::filesystem::path temp_dir(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("harvit_" + name + "_" + std::to_string(::getpid()));
}

}  // namespace harvit::test
