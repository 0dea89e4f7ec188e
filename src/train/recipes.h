// Named training recipes: what `harvit train --recipe NAME` sets, for the CLI and for other
// drivers (cross-validation, benchmarks, tests) that should train the same way.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "train/trainer.h"

namespace harvit::train {

// "seed": the seed's recipe (TrainOptions' defaults; sets nothing). "augmented": the recipe
// selected on WISDM validation only (docs/results/wisdm.md): cosine schedule, warm-up 2 epochs,
// label smoothing 0.1, weight decay 0.05, scale 0.2, jitter 0.1, shift 32, rotate 15.
const std::vector<std::string>& recipe_names();

// Sets the recipe's values in `opt`, except for the options that `given` says were given
// explicitly (it is asked with the CLI's long names: "--schedule", "--warmup-epochs",
// "--label-smoothing", "--weight-decay", "--aug-scale", "--aug-jitter", "--aug-shift",
// "--aug-rotate"); without `given` every value is set. Fails on an unknown name.
void apply_recipe(const std::string& name, TrainOptions& opt,
                  const std::function<bool(const std::string& option)>& given = {});

}  // namespace harvit::train
