// The instruction sets the build's baseline code was compiled for, as data (no code runs here):
// this file is compiled with the flags of everything else (-march=x86-64-v3 by default, or
// -march=native), and core/cpu.cpp, compiled for plain x86-64, reads these before main to check
// that the CPU can run the rest of the program.
#include <cstdint>

#include "core/cpu.h"

#ifndef HARVIT_BASELINE_NAME
#define HARVIT_BASELINE_NAME "unknown"
#endif

namespace harvit::cpu::detail {

extern const uint32_t kBaseline = 0
#ifdef __SSE4_2__
    | kSse42
#endif
#ifdef __AVX__
    | kAvx
#endif
#ifdef __AVX2__
    | kAvx2
#endif
#ifdef __FMA__
    | kFma
#endif
#ifdef __F16C__
    | kF16c
#endif
#ifdef __BMI2__
    | kBmi2
#endif
#ifdef __AVX512F__
    | kAvx512f
#endif
#ifdef __AVX512BW__
    | kAvx512bw
#endif
#ifdef __AVX512VL__
    | kAvx512vl
#endif
#ifdef __AVX512DQ__
    | kAvx512dq
#endif
#ifdef __AVX512CD__
    | kAvx512cd
#endif
#ifdef __AVX512VNNI__
    | kAvx512Vnni
#endif
#ifdef __AVXVNNI__
    | kAvxVnni
#endif
#ifdef __AVX512BF16__
    | kAvx512Bf16
#endif
#ifdef __AVX512FP16__
    | kAvx512Fp16
#endif
#ifdef __AMX_TILE__
    | kAmxTile
#endif
#ifdef __AMX_INT8__
    | kAmxInt8
#endif
#ifdef __AMX_BF16__
    | kAmxBf16
#endif
    ;

extern const char kBaselineName[] = HARVIT_BASELINE_NAME;

}  // namespace harvit::cpu::detail
