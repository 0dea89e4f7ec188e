// A linear layer of a model, y = x W^T + b over the model's parameter slab, run in a precision
// chosen per layer: the model's forward and backward are written once, and precision is a
// property of each of its linear operations.
//   fp32  linear_forward / linear_backward (oneDNN sgemm), training and inference;
//   bf16  mixed precision (core/bf16_gemm.h): GEMM inputs rounded to bf16, fp32 accumulation,
//         output, bias and gradients; the fp32 weights stay the master copy. Training and inference;
//         needs AVX512-BF16 (or AMX), else setting it fails naming the missing ISA.
//   int8  Int8Gemm (core/int8_gemm.h): weights quantised and packed when the precision is set,
//         per-row activation quantisation at run time; inference only.
#pragma once
#include <cstdint>
#include <string>

#include <vector>

#include "core/bf16_gemm.h"
#include "core/gemm.h"
#include "core/int8_gemm.h"

namespace harvit::nn {

enum class Precision { Fp32, Bf16, Int8 };
// "fp32" | "bf16" | "int8"; anything else fails naming the accepted values.
Precision parse_precision(const std::string& s);
const char* precision_name(Precision p);

class Linear {
 public:
  Linear() = default;
  // w, b: offsets of the (OUT, IN) weight and (OUT) bias in the model's slab.
  Linear(int64_t w, int64_t b, int64_t IN, int64_t OUT) : w_(w), b_(b), IN_(IN), OUT_(OUT) {}

  // Takes the weights as they are in `values` now (int8 quantises and packs them, bf16 rounds
  // them; a later change of the fp32 weights needs set_precision or refresh_weights again).
  void set_precision(Precision p, const float* values);
  // After an optimizer step: bf16 rounds the fp32 weights again; fp32 marks its packed panels
  // (few-row forwards) stale, to be packed again when next used. int8: nothing.
  void refresh_weights(const float* values);
  Precision precision() const { return p_; }
  // Inference (the weights stay as they are until refresh_weights): fp32 forwards of up to
  // kPackedMaxRows rows run over packed panels on the pool too, not only in serial mode.
  void set_packed_inference(bool on) { packed_inference_ = on; }

  // Packs the fp32 panels now where a few-row forward would pack them first (never packed, or
  // stale): after this, fp32 and int8 forwards may run on several threads at once, each over its
  // own rows (bf16 may not: it keeps the rounded input).
  void pack_now(const float* values);
  // out (R, OUT) = inp (R, IN) W^T + b; values = the slab's values.
  void forward(float* out, const float* inp, const float* values, int64_t R);
  // dinp (R, IN) (+)= dout W, grads: dW += dout^T inp, db += sum_r dout. bf16 reuses the
  // rounded input of the last forward when inp and R are that forward's (rounds inp again
  // otherwise). int8 fails with a clear message (inference only).
  void backward(float* dinp, float* grads, const float* dout, const float* inp, const float* values, int64_t R,
                bool accumulate = true);

  int64_t w() const { return w_; }
  int64_t b() const { return b_; }
  int64_t in() const { return IN_; }
  int64_t out() const { return OUT_; }

 private:
  int64_t w_ = 0, b_ = 0, IN_ = 0, OUT_ = 0;
  Precision p_ = Precision::Fp32;
  Int8Gemm q_;  // int8: the quantised, packed weights (empty otherwise)
  // fp32 forward of few rows (batch-1 inference, streaming): W^T in panels, packed on the first
  // such call and again after the weights change (refresh_weights marks them stale)
  static constexpr int64_t kPackedMaxRows = 128;
  PackedB pw_;
  bool pw_stale_ = false;
  bool packed_inference_ = false;
  std::vector<bf16> wb_, xb_, gb_;  // bf16: weights (OUT, IN), last input (R, IN), output gradient
  const float* xb_src_ = nullptr;   // bf16: the fp32 input xb_ was rounded from, and its rows
  int64_t xb_rows_ = 0;
};

}  // namespace harvit::nn
