// Int8 matrix products for inference: y = dequant(quant(x) W8^T) + b, with weights quantised and
// packed once.
//
// Quantisation (no calibration data needed):
//   - weights per output channel, symmetric, to 7 bits (|q| <= 63): without VNNI the u8 x s8
//     kernels sum pairs of products in int16 with saturation, and 2 * 255 * 63 < 32767 keeps
//     every pair exact;
//   - activations per row (token) at run time: u8 with scale max|x| / 255 when the whole row is
//     non-negative (the ReLU outputs most layers read), else zero point 128 and scale max|x| / 127.
//     Per row, so a window's result never depends on the other windows of its batch.
#pragma once
#include <cstdint>
#include <vector>

namespace harvit {

// out (R, OUT) = dequant(quant(inp) W8^T) + b for inp (R, IN); W from fp32 (OUT, IN).
// With AVX2 the product runs in harvit's own kernel over weights packed once at construction
// (vpmaddubsw/vpmaddwd, one row x 64 outputs per register tile; zero-point compensation from
// per-output weight sums computed once, dequantisation fused into the store); oneDNN's u8s8s32
// GEMM API re-packs the weights and re-sums them on every call, which costs most for a few rows
// (the batch-1 dense layer is a 1-row GEMV). Up to 128 rows (every layer at batch 1) harvit's
// kernel runs; above, oneDNN's GEMM, whose cache blocking wins on big inputs. Without AVX2,
// always oneDNN.
class Int8Gemm {
 public:
  Int8Gemm() = default;
  Int8Gemm(const float* w, const float* b, int64_t IN, int64_t OUT);
  void forward(float* out, const float* inp, int64_t R);
  int64_t in() const { return IN_; }
  int64_t out() const { return OUT_; }
  // Whether R rows go through harvit's AVX2 kernel (compiled in, and R small enough or forced
  // by HARVIT_INT8_KERNEL=harvit) rather than oneDNN's GEMM.
  static bool use_own_kernel(int64_t R);

 private:
  int64_t IN_ = 0, OUT_ = 0, INp_ = 0, OUTp_ = 0;  // INp_ % 4 == 0, OUTp_ % 8 == 0
  std::vector<int8_t> w8_;      // (OUT, IN) row-major, for the oneDNN fallback
  std::vector<int8_t> wpack_;   // (OUTp/8, INp/4, 8, 4): the AVX2 kernel's layout
  std::vector<int32_t> wsum_;   // (OUTp) sum_k w8[o][k], for the zero-point compensation
  std::vector<float> wscale_, bias_;  // (OUTp), zero-padded
  std::vector<uint8_t> a8_;     // scratch: quantised input (R, INp)
  std::vector<float> ascale_;   // scratch: per-row input scales
  std::vector<int32_t> azp_;    // scratch: per-row input zero points (0 or 128)
  std::vector<int32_t> acc_;    // scratch: int32 products (fallback)
};

}  // namespace harvit
