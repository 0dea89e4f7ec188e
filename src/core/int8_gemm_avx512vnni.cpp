// int8 tile kernel for AVX512-VNNI (vpdpbusd zmm: Cascade Lake, Ice Lake, Sapphire Rapids,
// Zen 4 and later). Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni.
#define HARVIT_INT8_AVX512VNNI 1
#include "int8_gemm_avx512.cpp"
