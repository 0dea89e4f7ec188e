// int8 tile kernel for AVX-VNNI (256-bit vpdpbusd, VEX-encoded: Alder Lake and later cores
// without AVX-512): the AVX2 kernel with one dot instruction instead of three. Compiled with
// -mavx2 -mfma -mavxvnni.
#define HARVIT_INT8_AVXVNNI 1
// 3 rows x 32 outputs (12 accumulators, 4 weight registers of the 16 ymm): measured on one core
// against 1x32, 1x64, 2x32, 2x48, 4x16, 4x24, 5x16, 6x16, 7x16 (3x32, 5x16 and 7x16 within 3 %,
// 1x64 27 % slower; docs/performance.md).
#define HARVIT_TILE_ROWS 3
#define HARVIT_TILE_BLOCKS 4
#include "int8_gemm_avx2.cpp"
