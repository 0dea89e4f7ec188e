#include "core/bf16_gemm.h"

#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <mutex>
#include <tuple>

#include "core/cpu.h"
#include "core/tensor.h"

namespace harvit {

void to_bf16(bf16* dst, const float* src, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, src + i, 4);
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    const uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    dst[i] = static_cast<bf16>(nan ? ((u >> 16) | 0x40u) : r);
  }
}

std::string bf16_unsupported_reason() {
  const uint32_t bf16_isa[2] = {cpu::kAvx512Bf16, cpu::kAmxBf16};
  for (uint32_t f : bf16_isa)
    if (cpu::has(f)) return "";
  for (uint32_t f : bf16_isa)
    if (cpu::detected() & f)
      return "bf16 needs AVX512-BF16 (or AMX-BF16), which HARVIT_ISA=" + cpu::isa_cap() + " switches off";
  return "bf16 needs a CPU with AVX512-BF16 (or AMX-BF16); this one has neither (" + cpu::names(cpu::detected()) +
         "). Use fp32, or int8 for inference";
}

void require_bf16() {
  const std::string why = bf16_unsupported_reason();
  if (!why.empty()) fail(why);
}

namespace {

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

using dims = dnnl::memory::dims;
using dt = dnnl::memory::data_type;

// One matmul primitive per shape, strides and mode; oneDNN's own cache would rebuild the
// descriptor on every call.
struct Key {
  int64_t M, N, K, ars, acs, brs, bcs, ldc;
  bool bias, accumulate;
  auto tie() const { return std::tie(M, N, K, ars, acs, brs, bcs, ldc, bias, accumulate); }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};
struct Prim {
  dnnl::memory::desc a, b, c, bias;
  dnnl::matmul mm;
};

const Prim& primitive(const Key& k) {
  static std::mutex mu;
  static std::map<Key, Prim> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  Prim p;
  p.a = dnnl::memory::desc(dims{k.M, k.K}, dt::bf16, dims{k.ars, k.acs});
  p.b = dnnl::memory::desc(dims{k.K, k.N}, dt::bf16, dims{k.brs, k.bcs});
  p.c = dnnl::memory::desc(dims{k.M, k.N}, dt::f32, dims{k.ldc, 1});
  if (k.bias) p.bias = dnnl::memory::desc(dims{1, k.N}, dt::f32, dims{k.N, 1});
  dnnl::primitive_attr attr;
  if (k.accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  try {
    const auto d = k.bias ? dnnl::matmul::desc(p.a, p.b, p.bias, p.c) : dnnl::matmul::desc(p.a, p.b, p.c);
    p.mm = dnnl::matmul(dnnl::matmul::primitive_desc(d, attr, engine()));
  } catch (const dnnl::error& e) {
    fail("oneDNN has no bf16 matmul for " + std::to_string(k.M) + " x " + std::to_string(k.K) + " x " +
         std::to_string(k.N) + " on this CPU (" + e.what() + "); " + bf16_unsupported_reason());
  }
  return cache.emplace(k, std::move(p)).first->second;
}

}  // namespace

void gemm_bf16(int64_t M, int64_t N, int64_t K, const bf16* A, int64_t ars, int64_t acs, const bf16* B,
               int64_t brs, int64_t bcs, float* C, int64_t ldc, const float* bias, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  const Prim& p = primitive({M, N, K, ars, acs, brs, bcs, ldc, bias != nullptr, accumulate});
  static thread_local dnnl::stream s(engine());
  dnnl::memory a(p.a, engine(), const_cast<bf16*>(A)), b(p.b, engine(), const_cast<bf16*>(B)), c(p.c, engine(), C);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}};
  if (bias) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p.bias, engine(), const_cast<float*>(bias)));
  p.mm.execute(s, args);
  s.wait();
}

}  // namespace harvit
