// int8 tile kernel for AVX-VNNI (256-bit vpdpbusd, VEX-encoded: Alder Lake and later cores
// without AVX-512): the AVX2 kernel with one dot instruction instead of three. Compiled with
// -mavx2 -mfma -mavxvnni.
#define HARVIT_INT8_AVXVNNI 1
// 6 rows x 16 outputs (12 accumulators, 2 weight registers, 1 broadcast: 15 of the 16 ymm).
// Measured on one core (HARVIT_ISA=avx_vnni, bench_layers BM_Int8LinearForward/4-7, the seed ViT's
// batch-1 layers): 6x16 145 / 58 / 50 us (q|k|v, attention out, merge), 4x24 147 / 58 / 52,
// 2x32 172 / 67 / 62, 3x32 220 / 79 / 77 (3x32 needs 17 registers: one accumulator lives on the
// stack; it led the session-4 sweep, when every shape's accumulators were shuffled anyway).
#define HARVIT_TILE_ROWS 6
#define HARVIT_TILE_BLOCKS 2
#include "int8_gemm_avx2.cpp"
