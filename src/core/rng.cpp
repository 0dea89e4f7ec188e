#include "core/rng.h"

#include <cmath>

#include "core/tensor.h"

namespace harvit {

uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void Rng::reseed(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) {
    x += 0x9E3779B97F4A7C15ULL;
    s = splitmix64(x);
  }
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

float Rng::uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }

float Rng::normal() {
  // Box-Muller; u1 in (0, 1] so log() is finite.
  double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
  double u2 = static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) fail("Rng::below(0)");
  // Lemire's nearly-divisionless method would be faster; rejection keeps it simple and unbiased.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = next_u64();
  while (x >= limit);
  return x % n;
}

void Rng::set_state(const std::vector<uint64_t>& st) {
  if (st.size() != 4) fail("RNG state must have 4 words, got " + std::to_string(st.size()));
  for (int i = 0; i < 4; ++i) s_[i] = st[i];
}

float fixture_uniform(uint64_t seed, uint64_t stream, uint64_t i) {
  uint64_t base = splitmix64(seed * 1000003ULL + stream);
  uint64_t v = splitmix64(base + i);
  return static_cast<float>(v >> 40) / 16777216.0f * 2.0f - 1.0f;
}

}  // namespace harvit
