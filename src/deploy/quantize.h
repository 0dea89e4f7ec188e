// Reduced-precision inference for deployment. The models' linear layers carry their own precision
// (nn/linear.h; int8 kernels in core/int8_gemm.h), so a quantised model is the same model class
// with the same forward code: convert_precision builds that copy from a trained fp32 model.
// The accuracy cost is measured, not assumed: `harvit eval --precision int8` reports it beside
// fp32 (docs/performance.md).
#pragma once
#include <memory>
#include <string>

#include "nn/model.h"

namespace harvit::deploy {

// "fp32" returns nullptr (use the model as it is); "int8" returns a copy of the model whose
// linear layers run in int8 (the model stays as it is). Fails with a clear message for unknown
// precisions and for models int8 does not support.
std::unique_ptr<nn::Model> convert_precision(const nn::Model& model, const std::string& precision);

}  // namespace harvit::deploy
