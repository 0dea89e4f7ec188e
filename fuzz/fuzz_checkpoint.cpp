// libFuzzer target: the safetensors reader and the checkpoint loader (the files users pass to
// eval / predict / train --resume). Every tensor the reader accepts is also converted, and the
// same bytes are then loaded as a model checkpoint; for an accepted checkpoint, the parameter
// count the loader checks against the file must be the one the built model has.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "core/safetensors.h"
#include "fuzz_util.h"
#include "nn/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using harvit::fuzz::note;
  const std::string path = harvit::fuzz::write_scratch("fuzz.safetensors", data, size);
  try {
    const harvit::SafetensorsFile f = harvit::SafetensorsFile::load(path);
    for (const auto& name : f.names()) {
      f.floats(name);
      try {
        f.ints(name);
      } catch (const std::runtime_error&) {  // float tensors are refused as integers
      }
    }
    note("safetensors: accepted, " + std::to_string(f.names().size()) + " tensors");
  } catch (const std::runtime_error& e) {
    note(std::string("safetensors: refused: ") + e.what());
  }
  try {
    const harvit::nn::LoadedCheckpoint ck = harvit::nn::load_checkpoint(path);
    const int64_t n = ck.model->params().count();
    if (harvit::nn::config_param_count(ck.model->config_json()) != n) {
      note("config_param_count disagrees with the built model");
      std::abort();
    }
    note("checkpoint: accepted, " + ck.model->kind() + " with " + std::to_string(n) + " parameters");
  } catch (const std::runtime_error& e) {
    note(std::string("checkpoint: refused: ") + e.what());
  }
  return 0;
}
