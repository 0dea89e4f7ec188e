// Seeded random numbers: a run is reproducible bit for bit for the same seed and thread count.
#pragma once
#include <cstdint>
#include <vector>

namespace harvit {

// SplitMix64 finaliser: a good 64-bit mixing function (used for seeding and hashing).
uint64_t splitmix64(uint64_t x);

// xoshiro256** generator seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits (exact float).
  float uniform();
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal (Box-Muller, double internally).
  float normal();
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n);
  // The full state, for checkpoints (resume continues the same stream).
  std::vector<uint64_t> state() const { return {s_[0], s_[1], s_[2], s_[3]}; }
  void set_state(const std::vector<uint64_t>& st);

 private:
  uint64_t s_[4];
};

// Counter-based values used by test fixtures; tools/torch_reference.py computes the same numbers
// with numpy so that PyTorch and harvit start from identical parameters and inputs.
// Element i of stream `stream` under `seed`: uniform in [-1, 1), exactly representable in float.
float fixture_uniform(uint64_t seed, uint64_t stream, uint64_t i);

}  // namespace harvit
