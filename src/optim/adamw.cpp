#include "optim/adamw.h"

#include <cmath>

#include "core/tensor.h"

namespace harvit::optim {

void AdamW::step(float* params, const float* grads, double lr) {
  ++t_;
  // Scalars computed in double exactly as torch.optim.AdamW (_single_tensor_adamw) does in Python.
  const float decay = static_cast<float>(1.0 - lr * cfg_.weight_decay);
  const double bc1 = 1.0 - std::pow(cfg_.beta1, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(cfg_.beta2, static_cast<double>(t_));
  const float step_size = static_cast<float>(lr / bc1);
  const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
  const float b1 = static_cast<float>(cfg_.beta1), b2 = static_cast<float>(cfg_.beta2);
  const float omb1 = static_cast<float>(1.0 - cfg_.beta1), omb2 = static_cast<float>(1.0 - cfg_.beta2);
  const float eps = static_cast<float>(cfg_.eps);
  const int64_t n = static_cast<int64_t>(m_.size());
  float* m = m_.data();
  float* v = v_.data();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float g = grads[i];
    float p = params[i] * decay;
    m[i] = m[i] * b1 + omb1 * g;
    v[i] = v[i] * b2 + omb2 * g * g;
    const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
    params[i] = p - step_size * (m[i] / denom);
  }
}

}  // namespace harvit::optim
