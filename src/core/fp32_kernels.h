// Internal to core/gemm.cpp (PackedB, and small_gemm where the CPU has AVX-512): the ISA-specific
// fp32 register-tile kernels over column panels, one translation unit per instruction set,
// compiled with its own -m flags and called only where core/cpu.h says the CPU has that ISA. Same
// rules as core/int8_kernels.h: those translation units include nothing but this header,
// <immintrin.h> and <cstdint>, and keep every function but the entry point in an anonymous
// namespace (no weak symbols compiled for an ISA). They and gemm.cpp are compiled with
// -ffp-contract=off (CMakeLists.txt): the equal-bits promise below depends on it.
#pragma once
#include <cstdint>

namespace harvit::f32k {

// C (m x n, rows ldc apart) = alpha * A B (+ bias) (+ C when accumulate), where element (i, p) of
// A is a[i * lda + p * acs] and B (k x n) is either packed in panels of `width` columns (plain
// false: panel p holds columns [p * width, (p + 1) * width) as k rows of width floats, columns
// past n zero) or a plain row-major matrix with rows ldb apart (plain true; columns past n are
// never read). The call computes rows [r0, r1) of panels [p0, p1) (columns [p0 * width, min(n,
// p1 * width))); a bias (n floats, or null) is added to every row. Every element is the sum over
// p in order, by fused multiply-adds from zero, then times alpha, + bias, + C: without a bias,
// the AVX2 small kernel's order (core/gemm.cpp), so small_gemm gives the same bits on either.
// (PackedB's AVX2 fallback adds a bias by starting C at it: equal too, unless a caller asks for
// bias and accumulate together, which none does.)
struct Args {
  const float* a;
  int64_t lda;
  const float* bp;
  int64_t k, n;
  float* c;
  int64_t ldc;
  bool accumulate;
  const float* bias = nullptr;
  float alpha = 1.0f;
  bool plain = false;  // B a plain matrix (rows ldb apart), not packed panels
  int64_t ldb = 0;
  int64_t acs = 1;
};
using PanelFn = void (*)(const Args&, int64_t r0, int64_t r1, int64_t p0, int64_t p1);

struct Kernel {
  const char* name;  // "AVX512 12x32"
  int width;         // columns per panel
  PanelFn fn;
};

// fp32_gemm_avx512.cpp (-mavx512f -mavx512bw -mavx512vl -mavx512dq)
extern const Kernel kAvx512;

}  // namespace harvit::f32k
