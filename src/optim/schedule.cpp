#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/tensor.h"

namespace harvit::optim {

double StepLR::lr(int64_t epoch) const {
  if (step_size <= 0) fail("StepLR step_size must be positive");
  return base_lr * std::pow(gamma, static_cast<double>(epoch / step_size));
}

double CosineLR::lr(int64_t step) const {
  const double s = static_cast<double>(step);
  // warm-up: (s + 1) / warmup_steps of the base rate, never above it (a fractional warm-up's last
  // step would go over)
  return s < warmup_steps ? base_lr * std::min(1.0, (s + 1) / warmup_steps)
                          : 0.5 * base_lr *
                                (1.0 + std::cos(3.14159265358979323846 * (s - warmup_steps) /
                                                std::max(1.0, total_steps - warmup_steps)));
}

LrSchedule::LrSchedule(const std::string& kind, double base_lr, int64_t epochs, int64_t steps_per_epoch,
                       int64_t step_size, double gamma, double warmup_epochs)
    : steps_per_epoch_(steps_per_epoch), step_{base_lr, step_size, gamma} {
  if (kind != "step" && kind != "cosine") fail("--schedule must be step or cosine");
  if (step_size <= 0) fail("StepLR step_size must be positive");
  // (a warm-up longer than the run is allowed: the rate then rises until the end, as `--recipe
  // augmented --epochs 1` asks with its 2 warm-up epochs)
  if (!(warmup_epochs >= 0)) fail("--warmup-epochs must be 0 or more, not " + std::to_string(warmup_epochs));
  cosine_ = kind == "cosine";
  cos_ = {base_lr, double(epochs) * steps_per_epoch, warmup_epochs * steps_per_epoch};
}

double LrSchedule::lr(int64_t epoch, int64_t step) const {
  return cosine_ ? cos_.lr(epoch * steps_per_epoch_ + step) : step_.lr(epoch);
}

}  // namespace harvit::optim
