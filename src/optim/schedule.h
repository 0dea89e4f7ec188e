// Learning-rate schedules: StepLR per epoch (the seed's) and cosine decay per optimizer step after
// a linear warm-up, and LrSchedule, which gives the trainer either one as lr(epoch, step).
#pragma once
#include <cstdint>
#include <string>

namespace harvit::optim {

// lr(epoch) = base_lr * gamma ^ floor(epoch / step_size), as torch.optim.lr_scheduler.StepLR.
struct StepLR {
  double base_lr = 5e-4;
  int64_t step_size = 1;
  double gamma = 0.5;
  double lr(int64_t epoch) const;
};

// Per optimizer step s (counted from 0 over the whole run): a linear warm-up
// base_lr * (s + 1) / warmup_steps while s < warmup_steps, then half a cosine from base_lr down to
// 0 at total_steps: 0.5 * base_lr * (1 + cos(pi * (s - warmup) / max(1, total - warmup))).
struct CosineLR {
  double base_lr = 5e-4;
  double total_steps = 1;   // epochs * steps per epoch
  double warmup_steps = 0;  // warm-up epochs * steps per epoch (need not be whole)
  double lr(int64_t step) const;
};

// The trainer's schedule: "step" (StepLR, constant within an epoch) or "cosine" (CosineLR over
// epochs x steps_per_epoch steps, warm-up given in epochs).
class LrSchedule {
 public:
  // Fails on another kind, or on a StepLR step_size <= 0.
  LrSchedule(const std::string& kind, double base_lr, int64_t epochs, int64_t steps_per_epoch, int64_t step_size,
             double gamma, double warmup_epochs);
  // The rate of optimizer step `step` (0-based) of epoch `epoch` (0-based).
  double lr(int64_t epoch, int64_t step) const;
  bool per_step() const { return cosine_; }

 private:
  bool cosine_ = false;
  int64_t steps_per_epoch_ = 1;
  StepLR step_;
  CosineLR cos_;
};

}  // namespace harvit::optim
