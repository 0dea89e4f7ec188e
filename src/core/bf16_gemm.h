// bf16 matrix products for mixed-precision training and inference: bf16 inputs, fp32
// accumulation and output, through oneDNN's matmul primitive (its AVX512-BF16 kernels, vdpbf16ps;
// AMX where the CPU has it). harvit keeps fp32 master weights; bf16 copies are made for the GEMMs.
#pragma once
#include <cstdint>
#include <string>

namespace harvit {

using bf16 = uint16_t;  // the upper half of an IEEE float

// dst[i] = bf16(src[i]), rounded to nearest even (NaN stays NaN). Parallel above a size.
void to_bf16(bf16* dst, const float* src, int64_t n);
inline float bf16_to_float(bf16 v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// Empty when this CPU runs bf16 GEMMs natively (AVX512-BF16 or AMX-BF16), else why not, naming
// the missing ISA. A HARVIT_ISA cap below avx512_bf16 switches it off (core/cpu.h), for testing.
std::string bf16_unsupported_reason();
// Throws bf16_unsupported_reason() when it is not empty.
void require_bf16();

// C (M x N, row stride ldc) = A B (+ C when accumulate) (+ bias per column when bias != null),
// fp32 accumulation. A (M x K) and B (K x N) are bf16 with element (i, p) of A at
// A[i * ars + p * acs] and (p, j) of B at B[p * brs + j * bcs]: row- or column-major views (one
// of each pair of strides must be 1). Runs on the OpenMP pool.
void gemm_bf16(int64_t M, int64_t N, int64_t K, const bf16* A, int64_t ars, int64_t acs, const bf16* B,
               int64_t brs, int64_t bcs, float* C, int64_t ldc, const float* bias, bool accumulate);

}  // namespace harvit
