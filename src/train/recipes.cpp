#include "train/recipes.h"

#include "core/tensor.h"

namespace harvit::train {

const std::vector<std::string>& recipe_names() {
  static const std::vector<std::string> names{"seed", "augmented"};
  return names;
}

void apply_recipe(const std::string& name, TrainOptions& o, const std::function<bool(const std::string&)>& given) {
  if (name == "seed") return;
  if (name != "augmented") fail("unknown recipe '" + name + "' (seed, augmented)");
  auto unset = [&](const char* option) { return !given || !given(option); };
  if (unset("--schedule")) o.schedule = "cosine";
  if (unset("--warmup-epochs")) o.warmup_epochs = 2;
  if (unset("--label-smoothing")) o.label_smoothing = 0.1;
  if (unset("--weight-decay")) o.weight_decay = 0.05;
  if (unset("--aug-scale")) o.aug_scale = 0.2;
  if (unset("--aug-jitter")) o.aug_jitter = 0.1;
  if (unset("--aug-shift")) o.aug_shift = 32;
  if (unset("--aug-rotate")) o.aug_rotate = 15;
}

}  // namespace harvit::train
