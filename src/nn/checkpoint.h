// Model checkpoints: safetensors files whose tensor names are the seed's PyTorch state_dict names,
// with the model config (and class names, normalisation statistics, training state) in the
// JSON metadata. Written atomically.
#pragma once
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "nn/model.h"

namespace harvit::nn {

// Extra, optional content a checkpoint carries besides the weights.
struct CheckpointMeta {
  std::vector<std::string> class_names;  // empty = unknown
  nlohmann::json normalization;          // e.g. {"mean": [...], "std": [...]}; null = none
  nlohmann::json extra;                  // anything else (training state, provenance); null = none
};

constexpr const char* kCheckpointFormat = "harvit-checkpoint";
constexpr int kCheckpointVersion = 1;

void save_checkpoint(const std::string& path, const Model& model, const CheckpointMeta& meta = {});

struct LoadedCheckpoint {
  std::unique_ptr<Model> model;
  CheckpointMeta meta;
};
// Errors name the file and the offending tensor: unknown or missing names, wrong shapes,
// truncated data, bad header, missing or invalid config.
LoadedCheckpoint load_checkpoint(const std::string& path);

// The number of parameters make_model(config) would allocate, computed without allocating
// (validates the config, refusing one that is not an object; saturates at INT64_MAX).
// load_checkpoint refuses a config that needs more values than the file's tensors hold before
// it builds the model, so a size field in a file cannot ask for an absurd allocation.
int64_t config_param_count(const nlohmann::json& config);

}  // namespace harvit::nn
