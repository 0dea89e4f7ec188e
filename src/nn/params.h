// All parameters of a model in one contiguous slab, all gradients in another (llm.c style):
// the optimizer is one flat loop, zeroing gradients is one memset, a checkpoint is one walk.
#pragma once
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace harvit::nn {

enum class Init {
  Uniform,  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for Linear/Conv weight and bias
  Ones,     // LayerNorm gain
  Zeros,    // LayerNorm bias, position table
};

struct ParamInfo {
  std::string name;  // PyTorch state_dict name
  Shape shape;
  int64_t offset = 0;  // into the slab, in floats
  int64_t size = 0;
  int64_t fan_in = 0;
  Init init = Init::Zeros;
};

class ParamSlab {
 public:
  // Registers a tensor; returns its offset. Call before finalize(). Registration order is the
  // state_dict order (checkpoints, initialisation); the slab layout is registration order too,
  // unless `at` places the tensor inside a region taken with reserve() - so tensors that one
  // fused kernel reads together (q|k|v weights) can sit side by side.
  int64_t add(const std::string& name, Shape shape, Init init, int64_t fan_in = 0, int64_t at = -1);
  // Takes n floats at the end of the slab for tensors added later with `at`; returns the offset.
  int64_t reserve(int64_t n);
  // Allocates values and gradients (gradients zeroed, values zeroed until init).
  void finalize();

  const std::vector<ParamInfo>& infos() const { return infos_; }
  const ParamInfo& info(const std::string& name) const;
  const ParamInfo* find(const std::string& name) const;
  int64_t count() const { return total_; }

  float* values() { return values_.data(); }
  const float* values() const { return values_.data(); }
  float* grads() { return grads_.data(); }
  const float* grads() const { return grads_.data(); }
  float* value(const std::string& name) { return values_.data() + info(name).offset; }
  float* grad(const std::string& name) { return grads_.data() + info(name).offset; }

  void zero_grad();
  // PyTorch default initialisation, drawn in registration order from rng.
  void init_default(Rng& rng);

 private:
  std::vector<ParamInfo> infos_;
  int64_t total_ = 0;
  std::vector<float> values_, grads_;
};

}  // namespace harvit::nn
