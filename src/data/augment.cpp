#include "data/augment.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

namespace harvit::data {

namespace {
using Rotation = std::array<std::array<double, 3>, 3>;

// Rodrigues: a rotation by an angle in [-deg, deg] about a uniformly random unit axis (draws: 3
// normals, then a uniform).
Rotation random_rotation(double deg, Rng& rng) {
  const double kPi = 3.14159265358979323846;
  double u[3] = {rng.normal(), rng.normal(), rng.normal()};
  const double n = std::sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]) + 1e-12;
  for (double& v : u) v /= n;
  const double a = (2.0 * rng.uniform() - 1.0) * deg * kPi / 180.0, c = std::cos(a), s = std::sin(a);
  Rotation R;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) R[i][j] = (i == j ? c : 0.0) + (1 - c) * u[i] * u[j];
  R[0][1] -= s * u[2], R[0][2] += s * u[1], R[1][0] += s * u[2], R[1][2] -= s * u[0], R[2][0] -= s * u[1], R[2][1] += s * u[0];
  return R;
}
}  // namespace

void augment_windows(float* x, int64_t B, int64_t T, int64_t M, const AugmentOptions& o, Rng& rng) {
  std::vector<float> tmp(T * M);
  for (int64_t b = 0; b < B; ++b) {
    float* w = x + b * T * M;
    if (o.shift > 0) {
      // k mod T in [0, T): a shift larger than the window (the augmented recipe's 32 on short
      // windows) wraps around instead of indexing before the buffer
      const int64_t k = ((static_cast<int64_t>(rng.below(2 * o.shift + 1)) - o.shift) % T + T) % T;
      for (int64_t t = 0; t < T; ++t)
        std::copy(w + t * M, w + (t + 1) * M, tmp.begin() + ((t + k) % T) * M);
      std::copy(tmp.begin(), tmp.end(), w);
    }
    if (o.rotate > 0) {
      Rotation R{};
      for (int64_t g = 0; g + 3 <= M; g += 3) {
        if (g == 0 || !o.rotate_together) R = random_rotation(o.rotate, rng);
        for (int64_t t = 0; t < T; ++t) {
          float* v = w + t * M + g;
          const double v0 = v[0], v1 = v[1], v2 = v[2];
          for (int i = 0; i < 3; ++i) v[i] = static_cast<float>(R[i][0] * v0 + R[i][1] * v1 + R[i][2] * v2);
        }
      }
    }
    if (o.scale > 0)
      for (int64_t m = 0; m < M; ++m) {
        const float f = static_cast<float>(1.0 + (2.0 * rng.uniform() - 1.0) * o.scale);
        for (int64_t t = 0; t < T; ++t) w[t * M + m] *= f;
      }
    if (o.jitter > 0)
      for (int64_t i = 0; i < T * M; ++i) w[i] += static_cast<float>(o.jitter) * rng.normal();
  }
}

Rng augment_rng(uint64_t seed, int64_t epoch, int64_t step) {
  return Rng(splitmix64(seed * 0x9E3779B97F4A7C15ULL ^ (uint64_t(epoch) << 32) ^ uint64_t(step)));
}

}  // namespace harvit::data
