// The CPU harvit runs on: instruction sets found at run time (cpuid, and the OS's XSAVE state
// for the AVX and AVX-512 registers and the AMX tiles), the cap set by HARVIT_ISA, oneDNN's own
// choice, and the kernels harvit picks from them.
//
// The default build's baseline is x86-64-v3 (AVX2, FMA, F16C, BMI2); faster kernels live in
// their own translation units compiled for their ISA and run only where features() has it.
// A binary started on a CPU without its baseline stops before main with a message naming what
// is missing (a constructor in cpu.cpp, compiled for plain x86-64 and run before every other
// static initialiser of the program: see cpu.cpp).
//
// HARVIT_ISA caps what harvit (and oneDNN) may use, to test and benchmark the slower paths on a
// faster CPU. Levels, each a CPU generation:
//   x86-64       nothing beyond SSE2 (only to see the start-up check refuse a v3 build)
//   avx2         AVX2 FMA F16C BMI2 (Haswell, Zen 1-3)
//   avx_vnni     + AVX-VNNI (Alder Lake-style cores without AVX-512)
//   avx512       + AVX-512 F/BW/VL/DQ/CD, no VNNI (Skylake-SP)
//   avx512_vnni  + AVX512-VNNI and AVX-VNNI (Cascade Lake, Ice Lake)
//   avx512_bf16  + AVX512-BF16 (Cooper Lake, Zen 4)
//   amx / native everything found (Sapphire Rapids with AMX)
// Unset = native. A cap never adds what the CPU lacks.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace harvit::cpu {

enum Feature : uint32_t {
  kSse42 = 1u << 0,
  kAvx = 1u << 1,
  kAvx2 = 1u << 2,
  kFma = 1u << 3,
  kF16c = 1u << 4,
  kBmi2 = 1u << 5,
  kAvx512f = 1u << 6,
  kAvx512bw = 1u << 7,
  kAvx512vl = 1u << 8,
  kAvx512dq = 1u << 9,
  kAvx512cd = 1u << 10,
  kAvx512Vnni = 1u << 11,
  kAvxVnni = 1u << 12,
  kAvx512Bf16 = 1u << 13,
  kAvx512Fp16 = 1u << 14,
  kAmxTile = 1u << 15,
  kAmxInt8 = 1u << 16,
  kAmxBf16 = 1u << 17,
};

// What the CPU and the OS offer (cpuid bits whose register state the OS saves), uncapped.
uint32_t detected();
// What harvit's kernels may use: detected() & the HARVIT_ISA cap.
uint32_t features();
inline bool has(uint32_t f) { return (features() & f) == f; }
// The HARVIT_ISA value ("" when unset).
const std::string& isa_cap();
// The features the build's baseline code was compiled for (-march of everything but the ISA
// kernels), e.g. avx2 | fma | f16c | bmi2 for x86-64-v3.
uint32_t baseline();
const char* baseline_name();  // "x86-64-v3", "native", ...

// "avx2 fma ..." for a feature set, in the order above.
std::string names(uint32_t f);
// The start-up check: an empty string when `have` covers the baseline, else the message naming
// what is missing (tested directly; the constructor prints it and exits).
std::string baseline_check(uint32_t have, const std::string& cap);
// oneDNN's effective ISA (dnnl_get_effective_cpu_isa): "avx2", "avx512_core_vnni", ...
std::string onednn_isa();

// One line: "CPU: ...; [HARVIT_ISA=... caps harvit to: ...; ]build baseline: ...; oneDNN: ...;
// int8 kernel: ...; small fp32 GEMM: ...".
std::string summary();
// The same as (key, value) pairs - cpu, harvit_isa (only when capped), caps_to, baseline, onednn,
// int8_kernel, small_fp32_gemm - for JSON outputs; no value contains ';'.
std::vector<std::pair<std::string, std::string>> summary_fields();

}  // namespace harvit::cpu
