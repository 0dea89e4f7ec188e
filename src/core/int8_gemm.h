// Int8 matrix products for inference: y = dequant(quant(x) W8^T) + b, with weights quantised and
// packed once.
//
// Quantisation (no calibration data needed):
//   - weights per output channel, symmetric, to 7 bits (|q| <= 63): without VNNI the u8 x s8
//     kernels sum pairs of products in int16 with saturation, and 2 * 255 * 63 < 32767 keeps
//     every pair exact (the VNNI kernels would not need it, but every kernel quantises alike, so
//     a model gives the same outputs on every CPU);
//   - activations per row (token) at run time: u8 with scale max|x| / 255 when the whole row is
//     non-negative (the ReLU outputs most layers read), else zero point 128 and scale max|x| / 127.
//     Per row, so a window's result never depends on the other windows of its batch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace harvit {

// The register-tile kernels harvit has (core/int8_kernels.h), by instruction set; None = oneDNN only.
enum class Int8Isa { None, Avx2, AvxVnni, Avx512, Avx512Vnni };

// out (R, OUT) = dequant(quant(inp) W8^T) + b for inp (R, IN); W from fp32 (OUT, IN).
// Up to 128 rows (every layer at batch 1) the product runs in harvit's own kernel over weights
// packed once at construction, in the layout of the kernel chosen then from the CPU found at run
// time (core/cpu.h): AVX512-VNNI (vpdpbusd zmm), AVX-VNNI (vpdpbusd ymm), AVX-512BW or AVX2
// (vpmaddubsw/vpmaddwd); zero-point compensation from per-output weight sums computed once,
// dequantisation fused into the store. All of them give bit-identical outputs (exact int32 sums,
// the same float operations). Above 128 rows, oneDNN's u8s8s32 GEMM, whose cache blocking wins on
// big inputs (it re-packs and re-sums the weights on every call, which costs most for a few rows:
// the batch-1 dense layer is a 1-row GEMV).
class Int8Gemm {
 public:
  Int8Gemm() = default;
  // isa: the kernel to pack for; Avx2 etc. fail when the CPU (or HARVIT_ISA) lacks it (tests
  // compare kernels); the default is best().
  Int8Gemm(const float* w, const float* b, int64_t IN, int64_t OUT, Int8Isa isa = best());
  // Safe to call from several threads at once (each over its own rows and output): the quantised
  // input is scratch of the calling thread.
  void forward(float* out, const float* inp, int64_t R);
  int64_t in() const { return IN_; }
  int64_t out() const { return OUT_; }
  Int8Isa isa() const { return isa_; }

  // Whether the CPU, capped by HARVIT_ISA, can run that kernel.
  static bool supported(Int8Isa isa);
  // The fastest supported kernel: AVX512-VNNI > AVX-VNNI > AVX512BW > AVX2 (> None).
  static Int8Isa best();
  static const char* isa_name(Int8Isa isa);  // "AVX512-VNNI", ..., "none"
  // "harvit AVX512-VNNI 1x128 up to 128 rows, oneDNN u8s8s32 above" (what forward does by default).
  static std::string kernel_summary();
  // Whether R rows go through harvit's kernel (one exists, and R small enough or forced by
  // HARVIT_INT8_KERNEL=harvit) rather than oneDNN's GEMM.
  static bool use_own_kernel(int64_t R);

 private:
  int64_t IN_ = 0, OUT_ = 0, INp_ = 0, OUTp_ = 0;  // INp_ % 4 == 0, OUTp_ % block == 0
  Int8Isa isa_ = Int8Isa::None;
  std::vector<int8_t> w8_;      // (OUT, IN) row-major, for oneDNN
  std::vector<int8_t> wpack_;   // (OUTp/block, INp/4, block, 4): the kernel's layout
  std::vector<int32_t> wsum_;   // (OUTp) sum_k w8[o][k], for the zero-point compensation
  std::vector<float> wscale_, bias_;  // (OUTp), zero-padded
};

}  // namespace harvit
