// AdamW with PyTorch semantics (decoupled weight decay, bias-corrected moments) over one flat
// parameter slab. The learning-rate schedules are in optim/schedule.h.
#pragma once
#include <cstdint>
#include <vector>

namespace harvit::optim {

struct AdamWConfig {
  double lr = 5e-4;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-3;
};

class AdamW {
 public:
  AdamW(int64_t n, AdamWConfig cfg) : cfg_(cfg), m_(n, 0.0f), v_(n, 0.0f) {}
  // One update of params (n) from grads (n) at learning rate lr (the scheduler's current value).
  void step(float* params, const float* grads, double lr);
  int64_t steps() const { return t_; }
  const AdamWConfig& config() const { return cfg_; }
  // State for checkpoints / resume.
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  const std::vector<float>& m() const { return m_; }
  const std::vector<float>& v() const { return v_; }
  void set_steps(int64_t t) { t_ = t; }

 private:
  AdamWConfig cfg_;
  int64_t t_ = 0;
  std::vector<float> m_, v_;
};

}  // namespace harvit::optim
