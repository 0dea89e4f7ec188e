// Seeded random numbers: a run is reproducible bit for bit for the same seed and thread count.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace harvit {

// SplitMix64 finaliser: a good 64-bit mixing function (used for seeding and hashing).
uint64_t splitmix64(uint64_t x);

// FNV-1a over bytes, continuing from h: a fingerprint of data (not cryptographic).
inline uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}
template <class T>
uint64_t fnv1a(const std::vector<T>& v, uint64_t h = 1469598103934665603ull) {
  return fnv1a(v.data(), v.size() * sizeof(T), h);
}

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
