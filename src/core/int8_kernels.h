// Internal to core/int8_gemm: the ISA-specific int8 register-tile kernels, one translation unit
// per instruction set, each compiled with its own -m flags (CMakeLists.txt) and reached only
// through Int8Gemm, which calls one of them only when core/cpu.h says the CPU has its ISA.
//
// Rule for those translation units (int8_gemm_<isa>.cpp): include nothing but this header,
// <immintrin.h>, <cstdint> and <cstring>, and keep every function in an anonymous namespace
// except the entry points below. An inline function with external linkage (a std:: template, a
// helper from simd.h) instantiated there would be emitted as a weak symbol compiled for that ISA,
// and the linker may pick that copy for callers on every CPU. The test isa_objects_self_contained
// checks the objects for weak symbols.
#pragma once
#include <cstdint>

namespace harvit::int8k {

// One call's operands. Weights are packed in blocks of BLOCK outputs x 4 inputs (BLOCK = 8 for
// 256-bit kernels, 16 for 512-bit ones): byte ((o / BLOCK) * kgroups + i / 4) * 4 * BLOCK +
// (o % BLOCK) * 4 + i % 4 holds w8[o][i]; wsum/wscale/bias are zero-padded to a whole block.
struct Args {
  const uint8_t* a;       // quantised rows, lda bytes apart (padding columns zero)
  int64_t lda;
  const int8_t* w;        // packed weights
  int64_t kgroups;        // padded inputs / 4
  const float* ascale;    // per row
  const int32_t* azp;     // per row: 0 or 128
  const int32_t* wsum;    // per output: sum_i w8[o][i]
  const float* wscale;    // per output
  const float* bias;      // per output
  float* out;             // (rows, OUT)
  int64_t OUT;
};

// out[r][o] for rows [r0, r1) and output blocks [ob0, ob1):
//   ascale[r] * wscale[o] * (sum_i a[r][i] w8[o][i] - azp[r] * wsum[o]) + bias[o]
// with the int32 sum exact and the last two operations one fused multiply-add, in every kernel,
// so all of them give bit-identical outputs.
using TileFn = void (*)(const Args&, int64_t r0, int64_t r1, int64_t ob0, int64_t ob1);

struct Kernel {
  const char* name;   // "AVX2", "AVX-VNNI", "AVX512BW", "AVX512-VNNI"
  int block;          // outputs per packed weight block
  int tile_rows;      // the register tile, for the callers' work split: rows x tile_blocks blocks
  int tile_blocks;
  TileFn fn;
};

// Defined in int8_gemm_avx2.cpp (-mavx2 -mfma), int8_gemm_avxvnni.cpp (+ -mavxvnni),
// int8_gemm_avx512.cpp (-mavx512f -mavx512bw -mavx512vl -mavx512dq),
// int8_gemm_avx512vnni.cpp (+ -mavx512vnni).
extern const Kernel kAvx2, kAvxVnni, kAvx512, kAvx512Vnni;

}  // namespace harvit::int8k
