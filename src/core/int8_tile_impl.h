// Internal to the int8_gemm_<isa>.cpp translation units (see int8_kernels.h for their rules):
// the register-tile loop, written once over a vector type V that the including file defines:
//
//   struct V {
//     using reg = ...;                 // __m256i or __m512i
//     static constexpr int BLOCK;      // outputs per register (8 or 16) = per packed block
//     static reg zero();
//     static reg bcast(int32_t a4);    // 4 activation bytes to every 32-bit lane
//     static reg load(const int8_t*);  // one packed block step: BLOCK outputs x 4 inputs
//     static reg dot(reg acc, reg a, reg w);   // acc + per-lane sum of the 4 u8 x s8 products
//     static void store(float* o, int64_t OUT, int64_t oc, reg acc, float as, int32_t zp,
//                       const int32_t* wsum, const float* wscale, const float* bias);
//   };
//
// Everything here has internal linkage (anonymous namespace), so each translation unit keeps
// its own copy compiled for its own ISA.
#pragma once
#include <cstdint>
#include <cstring>
#include <utility>

#include "core/int8_kernels.h"

namespace harvit::int8k {
namespace {

// f(integral_constant<I>) for I = 0..N-1: register arrays indexed by constants stay in registers
// (GCC 12 keeps a loop-indexed array of vectors in memory; see core/simd.h).
template <int N, class F>
inline __attribute__((always_inline)) void unroll(F&& f) {
  [&]<int... I>(std::integer_sequence<int, I...>) { (f(std::integral_constant<int, I>{}), ...); }(
      std::make_integer_sequence<int, N>{});
}

// RB rows x NB blocks of outputs, accumulators in RB * NB registers over the whole input. Each
// step: NB weight registers (loaded once, used by every row), RB broadcasts of 4 activation
// bytes, RB * NB dot steps.
template <class V, int RB, int NB>
inline __attribute__((always_inline)) void tile(const Args& g, int64_t r0, int64_t ob0) {
  // Plain loops over constant bounds (fully unrolled) and one flat accumulator array: GCC 12 keeps
  // these in registers across the k loop; nested capturing lambdas here made it shuffle the
  // accumulators between registers (and the stack) on every step.
  typename V::reg acc[RB * NB];
#pragma GCC unroll 32
  for (int i = 0; i < RB * NB; ++i) acc[i] = V::zero();
  const int64_t bstride = g.kgroups * 4 * V::BLOCK;
  const int8_t* w0 = g.w + ob0 * bstride;
  const uint8_t* a0 = g.a + r0 * g.lda;
  const int64_t lda = g.lda;
  for (int64_t kg = 0; kg < g.kgroups; ++kg) {
    typename V::reg w[NB];
#pragma GCC unroll 8
    for (int nb = 0; nb < NB; ++nb) w[nb] = V::load(w0 + nb * bstride + kg * 4 * V::BLOCK);
#pragma GCC unroll 16
    for (int r = 0; r < RB; ++r) {
      int32_t a4;
      std::memcpy(&a4, a0 + r * lda + kg * 4, 4);
      const typename V::reg av = V::bcast(a4);
#pragma GCC unroll 8
      for (int nb = 0; nb < NB; ++nb) acc[r * NB + nb] = V::dot(acc[r * NB + nb], av, w[nb]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < RB; ++r) {
    const int64_t row = r0 + r;
#pragma GCC unroll 8
    for (int nb = 0; nb < NB; ++nb)
      V::store(g.out + row * g.OUT, g.OUT, (ob0 + nb) * V::BLOCK, acc[r * NB + nb], g.ascale[row], g.azp[row],
               g.wsum, g.wscale, g.bias);
  }
}

// RB rows, blocks [ob0, ob1) in tiles of NB, the last one narrower.
template <class V, int RB, int NB>
inline __attribute__((always_inline)) void rows(const Args& g, int64_t r0, int64_t ob0, int64_t ob1) {
  int64_t ob = ob0;
  for (; ob + NB <= ob1; ob += NB) tile<V, RB, NB>(g, r0, ob);
  if (ob < ob1) {
    const int64_t left = ob1 - ob;
    bool done = false;
    unroll<NB>([&](auto n) {  // n + 1 = the remaining block count (constant per instantiation)
      if (!done && left == n + 1) {
        tile<V, RB, (n + 1 < NB ? n + 1 : 1)>(g, r0, ob);
        done = true;
      }
    });
  }
}

// The TileFn of a kernel with RB x NB register tiles: full row tiles, then single rows.
template <class V, int RB, int NB>
void run(const Args& g, int64_t r0, int64_t r1, int64_t ob0, int64_t ob1) {
  int64_t r = r0;
  for (; r + RB <= r1; r += RB) rows<V, RB, NB>(g, r, ob0, ob1);
  if constexpr (RB > 1)
    for (; r < r1; ++r) rows<V, 1, NB>(g, r, ob0, ob1);
}

}  // namespace
}  // namespace harvit::int8k
