#include "nn/linear.h"

#include "core/tensor.h"
#include "nn/layers.h"

namespace harvit::nn {

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::Fp32;
  if (s == "int8") return Precision::Int8;
  fail("unknown precision \"" + s + "\" (fp32 | int8)");
}

const char* precision_name(Precision p) { return p == Precision::Int8 ? "int8" : "fp32"; }

void Linear::set_precision(Precision p, const float* values) {
  p_ = p;
  q_ = p == Precision::Int8 ? Int8Gemm(values + w_, values + b_, IN_, OUT_) : Int8Gemm();
}

void Linear::forward(float* out, const float* inp, const float* values, int64_t R) {
  if (p_ == Precision::Int8) q_.forward(out, inp, R);
  else linear_forward(out, inp, values + w_, values + b_, R, IN_, OUT_);
}

void Linear::backward(float* dinp, float* grads, const float* dout, const float* inp, const float* values, int64_t R,
                      bool accumulate) const {
  if (p_ != Precision::Fp32)
    fail(std::string("a model with ") + precision_name(p_) + " layers is for inference only: train the fp32 model");
  linear_backward(dinp, grads + w_, grads + b_, dout, inp, values + w_, R, IN_, OUT_, accumulate);
}

}  // namespace harvit::nn
