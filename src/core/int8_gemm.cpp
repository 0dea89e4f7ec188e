#include "core/int8_gemm.h"

#include <dnnl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "core/simd.h"
#include "core/tensor.h"

namespace harvit {

namespace {
constexpr int kWeightMax = 63;  // 7-bit weights: no int16 saturation in non-VNNI u8 x s8 kernels
constexpr int64_t kMinParallel = 1 << 15;  // smaller loops stay on the calling thread
// Up to this many rows harvit's kernel (weights packed once, dequantisation in registers) runs;
// above, oneDNN's GEMM, whose per-call packing is amortised and whose cache blocking wins on big
// inputs. Measured at 2 threads, same run: 96 x 256 -> 768 (block 0 at batch 1) 142 vs 142 us,
// 24 x 512 -> 256: 26 vs 31 us, 1 x 3072 -> 1024: 26 vs 84 us, whole batch-1 forward 0.60 vs
// 0.62 ms; 3072 x 256 -> 768: 3.77 vs 3.67 ms, batch 256 1,800-1,900 vs 1,930-1,980 windows/s
// (also with the input processed in L1-sized chunks of rows).
constexpr int64_t kOwnKernelMaxRows = 128;
}

Int8Gemm::Int8Gemm(const float* w, const float* b, int64_t IN, int64_t OUT)
    : IN_(IN), OUT_(OUT), INp_((IN + 3) / 4 * 4), OUTp_((OUT + 7) / 8 * 8), w8_(IN * OUT) {
  wscale_.assign(OUTp_, 0.0f);
  bias_.assign(OUTp_, 0.0f);
  wsum_.assign(OUTp_, 0);
  std::copy(b, b + OUT, bias_.begin());
  for (int64_t o = 0; o < OUT; ++o) {
    const float* row = w + o * IN;
    float mx = 0.0f;
    for (int64_t i = 0; i < IN; ++i) mx = std::max(mx, std::fabs(row[i]));
    const float s = mx > 0.0f ? mx / kWeightMax : 1.0f;
    wscale_[o] = s;
    for (int64_t i = 0; i < IN; ++i) {
      const float q = std::nearbyint(row[i] / s);
      w8_[o * IN + i] = static_cast<int8_t>(std::clamp(q, -float(kWeightMax), float(kWeightMax)));
      wsum_[o] += w8_[o * IN + i];
    }
  }
  // Packed: for output block ob and input group kg, 32 bytes = 8 outputs x 4 consecutive inputs.
  wpack_.assign(OUTp_ * INp_, 0);
  for (int64_t o = 0; o < OUT; ++o)
    for (int64_t i = 0; i < IN; ++i)
      wpack_[((o / 8) * (INp_ / 4) + i / 4) * 32 + (o % 8) * 4 + i % 4] = w8_[o * IN + i];
}

namespace {
// HARVIT_INT8_KERNEL=harvit|onednn|auto (default auto) - for benchmarking the two.
int kernel_choice() {
  static const int choice = [] {
    const char* e = std::getenv("HARVIT_INT8_KERNEL");
    const std::string v = e ? e : "auto";
    if (v == "harvit") return 1;
    if (v == "onednn") return 2;
    if (v != "auto") fail("HARVIT_INT8_KERNEL must be harvit, onednn or auto, not " + v);
    return 0;
  }();
  return choice;
}
}  // namespace

bool Int8Gemm::use_own_kernel(int64_t R) {
#ifdef __AVX2__
  const int c = kernel_choice();
  return c == 1 || (c == 0 && R <= kOwnKernelMaxRows);
#else
  (void)R;
  return false;
#endif
}

namespace {
#ifdef __AVX2__
// One output row, 8 * NB outputs from o0 on, against NB packed output blocks; NB accumulators
// stay in registers over the whole row (constant indices: see core/simd.h). Each step: 4 inputs
// of the row broadcast to 8 lanes, times the 8x4 weights of a block: vpmaddubsw adds adjacent
// u8 x s8 pairs into int16 (exact: 2 * 255 * 63 < 32767), vpmaddwd with ones adds those pairs
// into int32. The store takes out the zero point ((a + zp) w summed -> minus zp * sum(w)) and
// dequantises: scale_a * scale_w * acc + bias.
template <int NB>
__attribute__((always_inline)) inline void int8_row(float* o, int64_t OUT, int64_t o0, const uint8_t* a,
                                                    const int8_t* w0, int64_t kgroups, int64_t wbs, float as,
                                                    int32_t zp, const int32_t* wsum, const float* wscale,
                                                    const float* bias) {
  using simd::unroll;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i acc[NB];
  unroll<NB>([&](auto nb) { acc[nb] = _mm256_setzero_si256(); });
  for (int64_t kg = 0; kg < kgroups; ++kg) {
    int32_t a4;
    std::memcpy(&a4, a + kg * 4, 4);
    const __m256i av = _mm256_set1_epi32(a4);
    unroll<NB>([&](auto nb) {
      const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + nb * wbs + kg * 32));
      acc[nb] = _mm256_add_epi32(acc[nb], _mm256_madd_epi16(_mm256_maddubs_epi16(av, wv), ones));
    });
  }
  const __m256 vas = _mm256_set1_ps(as);
  const __m256i vzp = _mm256_set1_epi32(zp);
  unroll<NB>([&](auto nb) {
    const int64_t oc = o0 + nb * 8;
    const __m256i comp = _mm256_mullo_epi32(vzp, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wsum + oc)));
    const __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[nb], comp));
    const __m256 res = _mm256_fmadd_ps(_mm256_mul_ps(vas, _mm256_loadu_ps(wscale + oc)), v, _mm256_loadu_ps(bias + oc));
    if (oc + 8 <= OUT)
      _mm256_storeu_ps(o + oc, res);
    else
      _mm256_maskstore_ps(o + oc, simd::first_lanes(OUT - oc), res);
  });
}

// One row of the output, outputs [8 * ob0, 8 * (ob0 + min(8, nob - ob0))): a register tile of up
// to 8 blocks of 8 (the last tile of a layer may be narrower).
__attribute__((always_inline)) inline void int8_row_tile(float* o, int64_t OUT, int64_t ob0, int64_t nob,
                                                         const uint8_t* a, const int8_t* wp, int64_t kgroups,
                                                         float as, int32_t zp,
                                                         const int32_t* wsum, const float* wscale, const float* bias) {
  const int64_t wbs = kgroups * 32, o0 = ob0 * 8;
  const int8_t* w0 = wp + ob0 * wbs;
  switch (std::min<int64_t>(8, nob - ob0)) {
    case 8: int8_row<8>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
    case 7: int8_row<7>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
    case 6: int8_row<6>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
    case 5: int8_row<5>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
    case 4: int8_row<4>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
    case 3: int8_row<3>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
    case 2: int8_row<2>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
    default: int8_row<1>(o, OUT, o0, a, w0, kgroups, wbs, as, zp, wsum, wscale, bias); break;
  }
}
#endif
}  // namespace

void Int8Gemm::forward(float* out, const float* inp, int64_t R) {
  const int64_t IN = IN_, OUT = OUT_, INp = INp_;
  if (static_cast<int64_t>(ascale_.size()) < R) {
    a8_.assign(R * INp, 0);  // the padding columns stay zero
    ascale_.resize(R);
    azp_.resize(R);
  }
  // Each row is quantised on its own: u8 over [0, max] (all 256 levels) when the row is
  // non-negative (the ReLU outputs most layers read), else zero point 128 and scale max|x| / 127.
  // Per row, so a window's result never depends on the other windows of its batch.
#pragma omp parallel for schedule(static) if(R * IN >= kMinParallel)
  for (int64_t r = 0; r < R; ++r) {
    const float* x = inp + r * IN;
    float lo = x[0], hi = x[0];
#pragma omp simd reduction(min : lo) reduction(max : hi)
    for (int64_t i = 0; i < IN; ++i) {
      lo = std::min(lo, x[i]);
      hi = std::max(hi, x[i]);
    }
    const bool nonneg = lo >= 0.0f;
    const float mx = std::max(hi, -lo), zp = nonneg ? 0.0f : 128.0f;
    const float s = mx > 0.0f ? mx / (nonneg ? 255.0f : 127.0f) : 1.0f, inv = 1.0f / s;
    ascale_[r] = s;
    azp_[r] = nonneg ? 0 : 128;
    uint8_t* q = a8_.data() + r * INp;
#pragma omp simd
    for (int64_t i = 0; i < IN; ++i) q[i] = static_cast<uint8_t>(std::nearbyint(x[i] * inv) + zp);
  }
#ifdef __AVX2__
  if (use_own_kernel(R)) {
  // One row x 64 outputs per tile (8 accumulators, weights streamed from L1 as memory operands
  // of vpmaddubsw): measured against 4 x 16, 6 x 16, 3 x 24, 2 x 32 and 1 x 96 tiles here
  // (170 vs 130-158 GOP/s on one core for 96 x 256 -> 768); narrower tiles for the last outputs.
  const int64_t kgroups = INp / 4, nob = OUTp_ / 8, otiles = (nob + 7) / 8;
  const uint8_t* a8 = a8_.data();
  const int8_t* wp = wpack_.data();
  const float* as = ascale_.data();
  const int32_t* ws = wsum_.data();
  const float *wsc = wscale_.data(), *bs = bias_.data();
  // every (output tile, row) pair shared among the threads
#pragma omp parallel for collapse(2) schedule(static) if(R * IN * OUT >= 64 * kMinParallel)
  for (int64_t ot = 0; ot < otiles; ++ot)
    for (int64_t r = 0; r < R; ++r)
      int8_row_tile(out + r * OUT, OUT, ot * 8, nob, a8 + r * INp, wp, kgroups, as[r], azp_[r], ws, wsc, bs);
  return;
  }
#endif
  if (static_cast<int64_t>(acc_.size()) < R * OUT) acc_.resize(R * OUT);
  const int32_t co = 0;
  // no offset for oneDNN: each row's zero point is taken out below, as zp_r * sum_k w[c][k]
  const dnnl_status_t st = dnnl_gemm_u8s8s32('N', 'T', 'F', R, OUT, IN, 1.0f, a8_.data(), INp, 0, w8_.data(), IN, 0,
                                             0.0f, acc_.data(), OUT, &co);
  if (st != dnnl_success) fail("oneDNN int8 GEMM failed (status " + std::to_string(static_cast<int>(st)) + ")");
#pragma omp parallel for schedule(static) if(R * OUT >= kMinParallel)
  for (int64_t r = 0; r < R; ++r) {
    const int32_t* a = acc_.data() + r * OUT;
    float* o = out + r * OUT;
    const float s = ascale_[r];
    const int32_t zr = azp_[r];
#pragma omp simd
    for (int64_t c = 0; c < OUT; ++c) o[c] = s * wscale_[c] * static_cast<float>(a[c] - zr * wsum_[c]) + bias_[c];
  }
}

}  // namespace harvit
