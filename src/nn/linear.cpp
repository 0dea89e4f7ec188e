#include "nn/linear.h"

#include "core/tensor.h"
#include "core/threading.h"
#include "nn/layers.h"

namespace harvit::nn {

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::Fp32;
  if (s == "bf16") return Precision::Bf16;
  if (s == "int8") return Precision::Int8;
  fail("unknown precision \"" + s + "\" (fp32 | bf16 | int8)");
}

const char* precision_name(Precision p) {
  return p == Precision::Int8 ? "int8" : p == Precision::Bf16 ? "bf16" : "fp32";
}

void Linear::set_precision(Precision p, const float* values) {
  if (p == Precision::Bf16) require_bf16();
  p_ = p;
  pw_ = PackedB();
  q_ = p == Precision::Int8 ? Int8Gemm(values + w_, values + b_, IN_, OUT_) : Int8Gemm();
  wb_.clear();
  xb_.clear();
  gb_.clear();
  xb_src_ = nullptr;
  xb_rows_ = 0;
  refresh_weights(values);
}

void Linear::refresh_weights(const float* values) {
  pw_stale_ = true;  // packed again by the next forward that uses the panels (training never does)
  if (p_ != Precision::Bf16) return;
  wb_.resize(OUT_ * IN_);
  to_bf16(wb_.data(), values + w_, OUT_ * IN_);
}

void Linear::pack_now(const float* values) {
  if (p_ != Precision::Fp32 || !(pw_.empty() || pw_stale_)) return;
  pw_.pack_transposed(values + w_, OUT_, IN_, IN_);
  pw_stale_ = false;
}

void Linear::forward(float* out, const float* inp, const float* values, int64_t R) {
  if (p_ == Precision::Int8) {
    q_.forward(out, inp, R);
  } else if (p_ == Precision::Bf16) {
    // out = bf16(inp) bf16(W)^T + b: W^T is W read column-major
    if (static_cast<int64_t>(xb_.size()) < R * IN_) xb_.resize(R * IN_);
    to_bf16(xb_.data(), inp, R * IN_);
    xb_src_ = inp;
    xb_rows_ = R;
    gemm_bf16(R, OUT_, IN_, xb_.data(), IN_, 1, wb_.data(), 1, IN_, out, OUT_, values + b_, false);
  } else if ((R > 1 && serial_mode()) || (packed_inference_ && R <= kPackedMaxRows)) {
    // Few rows (batch-1 inference): harvit's kernel over weights packed once, on the calling
    // thread in serial mode (oneDNN's sgemm would allocate), else with its panels shared among the
    // pool's threads when the model was prepared for inference (oneDNN's sgemm packs B again on
    // every call, which costs most for few rows).
    pack_now(values);
    pw_.multiply(R, inp, IN_, out, OUT_, false, values + b_);  // the bias added in the kernel's store
  } else {
    linear_forward(out, inp, values + w_, values + b_, R, IN_, OUT_);
  }
}

void Linear::backward(float* dinp, float* grads, const float* dout, const float* inp, const float* values, int64_t R,
                      bool accumulate) {
  if (p_ == Precision::Int8)
    fail(std::string("a model with ") + precision_name(p_) + " layers is for inference only: train the fp32 model");
  if (p_ == Precision::Fp32) {
    linear_backward(dinp, grads + w_, grads + b_, dout, inp, values + w_, R, IN_, OUT_, accumulate);
    return;
  }
  // bf16: dinp (+)= dout W; dW += dout^T x (dout^T is dout read column-major); db in fp32.
  // x in bf16 is the last forward's rounded input, unless that forward read another input.
  if (inp != xb_src_ || R != xb_rows_) {
    if (static_cast<int64_t>(xb_.size()) < R * IN_) xb_.resize(R * IN_);
    to_bf16(xb_.data(), inp, R * IN_);
    xb_src_ = inp;
    xb_rows_ = R;
  }
  if (static_cast<int64_t>(gb_.size()) < R * OUT_) gb_.resize(R * OUT_);
  to_bf16(gb_.data(), dout, R * OUT_);
  if (dinp) gemm_bf16(R, IN_, OUT_, gb_.data(), OUT_, 1, wb_.data(), IN_, 1, dinp, IN_, nullptr, accumulate);
  gemm_bf16(OUT_, IN_, R, gb_.data(), 1, OUT_, xb_.data(), IN_, 1, grads + w_, IN_, nullptr, true);
  linear_backward(nullptr, nullptr, grads + b_, dout, nullptr, nullptr, R, IN_, OUT_);
}

}  // namespace harvit::nn
