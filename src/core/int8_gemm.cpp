#include "core/int8_gemm.h"

#include <dnnl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/cpu.h"
#include "core/int8_kernels.h"
#include "core/simd.h"
#include "core/tensor.h"
#include "core/threading.h"

namespace harvit {

namespace {
constexpr int kWeightMax = 63;  // 7-bit weights: no int16 saturation in non-VNNI u8 x s8 kernels
constexpr int64_t kMinParallel = 1 << 15;  // smaller loops stay on the calling thread
// Up to this many rows harvit's kernel (weights packed once, dequantisation in registers) runs;
// above, oneDNN's GEMM, whose per-call packing is amortised and whose cache blocking wins on big
// inputs. Measured at 2 threads, same run: 96 x 256 -> 768 (block 0 at batch 1) 142 vs 142 us,
// 24 x 512 -> 256: 26 vs 31 us, 1 x 3072 -> 1024: 26 vs 84 us, whole batch-1 forward 0.60 vs
// 0.62 ms; 3072 x 256 -> 768: 3.77 vs 3.67 ms, batch 256 1,800-1,900 vs 1,930-1,980 windows/s
// (also with the input processed in L1-sized chunks of rows). (AVX2 host; for the VNNI kernels
// see docs/performance.md.)
constexpr int64_t kOwnKernelMaxRows = 128;

const int8k::Kernel* kernel_of(Int8Isa isa) {
  switch (isa) {
    case Int8Isa::Avx2: return &int8k::kAvx2;
    case Int8Isa::AvxVnni: return &int8k::kAvxVnni;
    case Int8Isa::Avx512: return &int8k::kAvx512;
    case Int8Isa::Avx512Vnni: return &int8k::kAvx512Vnni;
    default: return nullptr;
  }
}

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

bool Int8Gemm::supported(Int8Isa isa) {
  using namespace cpu;
  switch (isa) {
    case Int8Isa::None: return true;
    case Int8Isa::Avx2: return has(kAvx2 | kFma);
    case Int8Isa::AvxVnni: return has(kAvx2 | kFma | kAvxVnni);
    case Int8Isa::Avx512: return has(kAvx512f | kAvx512bw | kAvx512vl | kAvx512dq);
    case Int8Isa::Avx512Vnni: return has(kAvx512f | kAvx512bw | kAvx512vl | kAvx512dq | kAvx512Vnni);
  }
  return false;
}

Int8Isa Int8Gemm::best() {
  static const Int8Isa b = [] {
    for (Int8Isa i : {Int8Isa::Avx512Vnni, Int8Isa::AvxVnni, Int8Isa::Avx512, Int8Isa::Avx2})
      if (supported(i)) return i;
    return Int8Isa::None;
  }();
  return b;
}

const char* Int8Gemm::isa_name(Int8Isa isa) {
  const int8k::Kernel* k = kernel_of(isa);
  return k ? k->name : "none";
}

bool Int8Gemm::use_own_kernel(int64_t R) {
  if (best() == Int8Isa::None) return false;
  const int c = kernel_choice();
  return c == 1 || (c == 0 && R <= kOwnKernelMaxRows);
}

std::string Int8Gemm::kernel_summary() {
  const int8k::Kernel* k = kernel_of(best());
  if (!k) return "oneDNN u8s8s32 (no harvit kernel for this CPU)";
  const std::string own = std::string("harvit ") + k->name + " " + std::to_string(k->tile_rows) + "x" +
                          std::to_string(k->tile_blocks * k->block);
  switch (kernel_choice()) {
    case 1: return own + " (HARVIT_INT8_KERNEL=harvit)";
    case 2: return "oneDNN u8s8s32 (HARVIT_INT8_KERNEL=onednn)";
    default: return own + " up to " + std::to_string(kOwnKernelMaxRows) + " rows, oneDNN u8s8s32 above";
  }
}

Int8Gemm::Int8Gemm(const float* w, const float* b, int64_t IN, int64_t OUT, Int8Isa isa)
    : IN_(IN), OUT_(OUT), isa_(isa), w8_(IN * OUT) {
  if (!supported(isa))
    fail(std::string("int8 kernel ") + isa_name(isa) + " needs an instruction set this CPU lacks (or HARVIT_ISA hides)");
  const int64_t block = isa == Int8Isa::None ? 8 : kernel_of(isa)->block;
  INp_ = (IN + 3) / 4 * 4;
  OUTp_ = (OUT + block - 1) / block * block;
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
  if (isa == Int8Isa::None) return;
  // Packed once, in the chosen kernel's layout: for output block ob and input group kg,
  // block x 4 bytes (block outputs x 4 consecutive inputs), as vpmaddubsw / vpdpbusd read them.
  const int64_t kgroups = INp_ / 4;
  wpack_.assign(OUTp_ * INp_, 0);
  for (int64_t o = 0; o < OUT; ++o)
    for (int64_t i = 0; i < IN; ++i)
      wpack_[((o / block) * kgroups + i / 4) * 4 * block + (o % block) * 4 + i % 4] = w8_[o * IN + i];
}

namespace {
// The scratch of a forward belongs to the calling thread, not to the layer: a model's forward may
// run one layer on several threads at once, each over its own rows (Vit::forward's team), and
// layers of different widths share it (each row's padding columns are zeroed, for the kernels).
struct Scratch {
  std::vector<uint8_t> a8;     // quantised input (R, INp)
  std::vector<float> ascale;   // per-row input scales
  std::vector<int32_t> azp;    // per-row input zero points (0 or 128)
  std::vector<int32_t> acc;    // int32 products (oneDNN)
};
thread_local Scratch t_scratch;
}  // namespace

void Int8Gemm::forward(float* out, const float* inp, int64_t R) {
  const int64_t IN = IN_, OUT = OUT_, INp = INp_;
  Scratch& sc = t_scratch;
  if (static_cast<int64_t>(sc.a8.size()) < R * INp) sc.a8.resize(R * INp);
  if (static_cast<int64_t>(sc.ascale.size()) < R) {
    sc.ascale.resize(R);
    sc.azp.resize(R);
  }
  uint8_t* const a8 = sc.a8.data();
  float* const ascale = sc.ascale.data();
  int32_t* const azp = sc.azp.data();
  // Each row is quantised on its own: u8 over [0, max] (all 256 levels) when the row is
  // non-negative (the ReLU outputs most layers read), else zero point 128 and scale max|x| / 127.
  // Per row, so a window's result never depends on the other windows of its batch.
  auto quantise = [&](int64_t r) {
    const float* x = inp + r * IN;
    float lo, hi;
    simd::min_max(x, IN, lo, hi);  // four accumulator chains (one made this a tenth of a layer)
    const bool nonneg = lo >= 0.0f;
    const float mx = std::max(hi, -lo), zp = nonneg ? 0.0f : 128.0f;
    const float s = mx > 0.0f ? mx / (nonneg ? 255.0f : 127.0f) : 1.0f, inv = 1.0f / s;
    ascale[r] = s;
    azp[r] = nonneg ? 0 : 128;
    uint8_t* q = a8 + r * INp;
#pragma omp simd
    for (int64_t i = 0; i < IN; ++i) q[i] = static_cast<uint8_t>(std::nearbyint(x[i] * inv) + zp);
    for (int64_t i = IN; i < INp; ++i) q[i] = 0;  // padding: multiplies the zero-padded weights
  };
  // serial mode (streaming): always the own kernel, as oneDNN's GEMM allocates on every call
  if (isa_ != Int8Isa::None && (use_own_kernel(R) || serial_mode())) {
    // The kernel's register tiles (core/int8_kernels.h; shapes measured in docs/performance.md),
    // every (output tile, row tile) pair shared among the threads; the rows are quantised in the
    // same parallel region, one barrier before the products.
    const int8k::Kernel& k = *kernel_of(isa_);
    const int8k::Args g{a8,           INp,         wpack_.data(),  INp / 4, ascale,         azp,
                        wsum_.data(), wscale_.data(), bias_.data(), out,    OUT};
    const int64_t nob = OUTp_ / k.block, TB = k.tile_blocks, TR = k.tile_rows;
    const int64_t otiles = (nob + TB - 1) / TB, rtiles = (R + TR - 1) / TR;
    parallel_then_2d(
        R, quantise, otiles, rtiles,
        [&](int64_t ot, int64_t rt) {
          k.fn(g, rt * TR, std::min(R, (rt + 1) * TR), ot * TB, std::min(nob, (ot + 1) * TB));
        },
        R * IN * OUT >= 64 * kMinParallel);
    return;
  }
  parallel_for(R, R * IN >= kMinParallel, quantise);
  if (static_cast<int64_t>(sc.acc.size()) < R * OUT) sc.acc.resize(R * OUT);
  const int32_t* const acc = sc.acc.data();
  const int32_t co = 0;
  // no offset for oneDNN: each row's zero point is taken out below, as zp_r * sum_k w[c][k]
  const dnnl_status_t st = dnnl_gemm_u8s8s32('N', 'T', 'F', R, OUT, IN, 1.0f, a8, INp, 0, w8_.data(), IN, 0,
                                             0.0f, sc.acc.data(), OUT, &co);
  if (st != dnnl_success) fail("oneDNN int8 GEMM failed (status " + std::to_string(static_cast<int>(st)) + ")");
  parallel_for(R, R * OUT >= kMinParallel, [&](int64_t r) {
    const int32_t* a = acc + r * OUT;
    float* o = out + r * OUT;
    const float s = ascale[r];
    const int32_t zr = azp[r];
#pragma omp simd
    for (int64_t c = 0; c < OUT; ++c) o[c] = s * wscale_[c] * static_cast<float>(a[c] - zr * wsum_[c]) + bias_[c];
  });
}

}  // namespace harvit
