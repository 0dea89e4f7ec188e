// Per-layer micro-benchmarks (Google Benchmark) at the seed config's shapes for a training batch
// of 128 windows: T=128, M=3, P=4 -> N=32 tokens per axis, D=256, H=4, A=64, hidden=1024; the
// linear layers also at batch 1 (streaming inference), and the small GEMMs of one attention head.
// GEMM-shaped layers report GFLOP/s (counter "FLOPS"); memory-bound ones bytes/s.
//   build/release/bench/bench_layers [--benchmark_filter=REGEX]
// The int8 rows use harvit's kernel up to 128 rows and oneDNN's above; HARVIT_INT8_KERNEL=harvit
// or =onednn forces one of them for a comparison, HARVIT_ISA=avx2 (etc.) caps the kernels' ISA.
#include <benchmark/benchmark.h>

#include <optional>
#include <string>
#include <vector>

#include "bench_common.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/threading.h"
#include "core/int8_gemm.h"
#include "deploy/quantize.h"
#include "nn/layers.h"
#include "optim/adamw.h"

using namespace harvit;
using namespace harvit::nn;

namespace {

constexpr int64_t kB = 128, kM = 3, kN = 32, kD = 256, kH = 4, kA = 64, kHA = kH * kA;

std::vector<float> randn(int64_t n, uint64_t seed = 1) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = rng.normal();
  return v;
}

void flops(benchmark::State& st, double per_iter) {
  st.counters["FLOPS"] = benchmark::Counter(per_iter, benchmark::Counter::kIsIterationInvariantRate,
                                            benchmark::Counter::kIs1000);
}
void bytes(benchmark::State& st, double per_iter) { st.SetBytesProcessed(int64_t(per_iter) * st.iterations()); }

// Linear layers of the model: (rows, in, out) per layer, args index kLinears.
struct LinearShape { const char* name; int64_t R, IN, OUT; };
const LinearShape kLinears[] = {
    {"qkv (block 0)", kB * kM * kN, kD, 3 * kHA},
    {"attention out (block 0)", kB * kM * kN, kHA, kD},
    {"patch merge (block 0)", kB * kM * kN / 2, 2 * kD, kD},
    {"dense_tower.0", kB, kM * 4 * kD, 1024},
    {"qkv (block 0, batch 1)", kM * kN, kD, 3 * kHA},
    {"attention out (block 0, batch 1)", kM * kN, kHA, kD},
    {"patch merge (block 0, batch 1)", kM * kN / 2, 2 * kD, kD},
    {"dense_tower.0 (batch 1)", 1, kM * 4 * kD, 1024},
};

void BM_LinearForward(benchmark::State& st) {
  const auto& s = kLinears[st.range(0)];
  auto x = randn(s.R * s.IN), w = randn(s.OUT * s.IN, 2), b = randn(s.OUT, 3);
  std::vector<float> out(s.R * s.OUT);
  for (auto _ : st) linear_forward(out.data(), x.data(), w.data(), b.data(), s.R, s.IN, s.OUT);
  st.SetLabel(s.name);
  flops(st, 2.0 * s.R * s.IN * s.OUT);
}
BENCHMARK(BM_LinearForward)->DenseRange(0, 7)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The same products over weights packed once (PackedB: batch-1 inference of a prepared model, and
// the streaming path), on the pool's threads (OMP_NUM_THREADS) or, with arg 1 = 1, on the calling
// thread alone (serial mode).
void BM_PackedLinearForward(benchmark::State& st) {
  const auto& s = kLinears[st.range(0)];
  auto x = randn(s.R * s.IN), w = randn(s.OUT * s.IN, 2), b = randn(s.OUT, 3);
  std::vector<float> out(s.R * s.OUT);
  PackedB pb;
  pb.pack_transposed(w.data(), s.OUT, s.IN, s.IN);
  std::optional<SerialScope> serial;
  if (st.range(1)) serial.emplace();
  for (auto _ : st) pb.multiply(s.R, x.data(), s.IN, out.data(), s.OUT, false, b.data());
  st.SetLabel(std::string(s.name) + (st.range(1) ? ", serial" : ", pool"));
  flops(st, 2.0 * s.R * s.IN * s.OUT);
}
BENCHMARK(BM_PackedLinearForward)->ArgsProduct({{4, 5, 6, 7}, {0, 1}})->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_LinearBackward(benchmark::State& st) {  // dinp and dW (and db): twice the forward's work
  const auto& s = kLinears[st.range(0)];
  auto x = randn(s.R * s.IN), w = randn(s.OUT * s.IN, 2), dout = randn(s.R * s.OUT, 3);
  std::vector<float> dx(s.R * s.IN), dw(s.OUT * s.IN), db(s.OUT);
  for (auto _ : st)
    linear_backward(dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), s.R, s.IN, s.OUT, false);
  st.SetLabel(s.name);
  flops(st, 4.0 * s.R * s.IN * s.OUT);
}
BENCHMARK(BM_LinearBackward)->DenseRange(0, 3)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_Int8LinearForward(benchmark::State& st) {  // quantise rows + u8s8 GEMM + dequantise
  const auto& s = kLinears[st.range(0)];
  auto x = randn(s.R * s.IN), w = randn(s.OUT * s.IN, 2), b = randn(s.OUT, 3);
  for (auto& v : x) v = v > 0 ? v : 0;  // ReLU outputs, as most int8 layers see
  Int8Gemm q(w.data(), b.data(), s.IN, s.OUT);
  std::vector<float> out(s.R * s.OUT);
  for (auto _ : st) q.forward(out.data(), x.data(), s.R);
  st.SetLabel(s.name);
  flops(st, 2.0 * s.R * s.IN * s.OUT);
}
BENCHMARK(BM_Int8LinearForward)->DenseRange(0, 7)->Unit(benchmark::kMicrosecond)->UseRealTime();

// One (window-axis, head) pair's products on one thread (core/gemm.h): arg 0 = S = q k^T
// (32 x 32, k = 64, B^T transposed into scratch), 1 = z = P v (32 x 64, k = 32), both over rows
// 768 floats apart as in the fused q|k|v buffer.
void BM_SmallGemmAttentionHead(benchmark::State& st) {
  const int64_t n = kN, ld = 3 * kHA;
  auto qkv = randn(n * ld), P = randn(n * n, 2);
  std::vector<float> out(n * kHA);
  for (auto _ : st) {
    if (st.range(0) == 0)
      small_gemm_nt(n, n, kA, 0.125f, qkv.data(), ld, qkv.data() + kHA, ld, out.data(), n, false);
    else
      small_gemm(n, kA, n, 1.0f, P.data(), n, 1, qkv.data() + 2 * kHA, ld, out.data(), kHA, false);
    benchmark::DoNotOptimize(out.data());
  }
  st.SetLabel(st.range(0) == 0 ? "q k^T" : "P v");
  flops(st, 2.0 * n * n * kA);
}
BENCHMARK(BM_SmallGemmAttentionHead)->DenseRange(0, 1)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AttentionForward(benchmark::State& st) {  // block 0: G = B*M groups of n = 32 tokens
  const int64_t G = kB * kM, n = kN, R = G * n;
  auto qkv = randn(R * 3 * kHA);
  std::vector<float> z(R * kHA), att(G * kH * n * n);
  for (auto _ : st)
    attention_forward(z.data(), att.data(), qkv.data(), qkv.data() + kHA, qkv.data() + 2 * kHA, G, n, kH, kA, 3 * kHA);
  flops(st, 2.0 * 2.0 * G * kH * n * n * kA);
}
BENCHMARK(BM_AttentionForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AttentionBackward(benchmark::State& st) {
  const int64_t G = kB * kM, n = kN, R = G * n;
  auto qkv = randn(R * 3 * kHA), dz = randn(R * kHA, 2);
  std::vector<float> z(R * kHA), att(G * kH * n * n), dqkv(R * 3 * kHA);
  attention_forward(z.data(), att.data(), qkv.data(), qkv.data() + kHA, qkv.data() + 2 * kHA, G, n, kH, kA, 3 * kHA);
  for (auto _ : st)
    attention_backward(dqkv.data(), dqkv.data() + kHA, dqkv.data() + 2 * kHA, dz.data(), att.data(),
                       qkv.data(), qkv.data() + kHA, qkv.data() + 2 * kHA, G, n, kH, kA, 3 * kHA);
  flops(st, 4.0 * 2.0 * G * kH * n * n * kA);
}
BENCHMARK(BM_AttentionBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_LayerNormResidualReluForward(benchmark::State& st) {
  const int64_t R = kB * kM * kN;
  auto x = randn(R * kD), res = randn(R * kD, 2), g = randn(kD, 3), b = randn(kD, 4);
  std::vector<float> out(R * kD), mean(R), rstd(R);
  for (auto _ : st)
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), g.data(), b.data(), R, kD, res.data(), true);
  bytes(st, 3.0 * R * kD * sizeof(float));
}
BENCHMARK(BM_LayerNormResidualReluForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_LayerNormBackward(benchmark::State& st) {
  const int64_t R = kB * kM * kN;
  auto x = randn(R * kD), dy = randn(R * kD, 2), g = randn(kD, 3), b = randn(kD, 4);
  std::vector<float> out(R * kD), mean(R), rstd(R), dx(R * kD), dg(kD), db(kD);
  layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), g.data(), b.data(), R, kD);
  for (auto _ : st)
    layernorm_backward(dx.data(), dg.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(), g.data(), R,
                       kD, false);
  bytes(st, 3.0 * R * kD * sizeof(float));
}
BENCHMARK(BM_LayerNormBackward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_PatchEmbedForward(benchmark::State& st) {
  const int64_t T = 128, P = 4;
  auto x = randn(kB * T * kM), w = randn(kD * P, 2), b = randn(kD, 3), pos = randn(kM * kN * kD, 4);
  std::vector<float> out(kB * kM * kN * kD), patches(kB * kM * kN * P);
  for (auto _ : st)
    patch_embed_forward(out.data(), patches.data(), x.data(), w.data(), b.data(), pos.data(), kB, T, kM, P, kD);
  bytes(st, 2.0 * kB * kM * kN * kD * sizeof(float));
}
BENCHMARK(BM_PatchEmbedForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_PatchMergeForward(benchmark::State& st) {
  const int64_t G = kB * kM;
  auto y = randn(G * kN * kD);
  std::vector<float> cat(G * kN * kD);
  for (auto _ : st) patch_merge_forward(cat.data(), y.data(), G, kN, kD);
  bytes(st, 2.0 * G * kN * kD * sizeof(float));
}
BENCHMARK(BM_PatchMergeForward)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_AdamWStep(benchmark::State& st) {  // all 4,367,366 parameters
  bench::SeedModel s(1);
  auto& ps = s.model.params();
  auto g = randn(ps.count(), 5);
  std::copy(g.begin(), g.end(), ps.grads());
  optim::AdamW opt(ps.count(), optim::AdamWConfig{});
  for (auto _ : st) opt.step(ps.values(), ps.grads(), 5e-4);
  bytes(st, 7.0 * ps.count() * sizeof(float));  // read w, g, m, v; write w, m, v
}
BENCHMARK(BM_AdamWStep)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_VitForward(benchmark::State& st) {  // the whole model, batch = arg
  const int64_t B = st.range(0);
  bench::SeedModel s(B);
  s.model.forward(s.x.data(), B);  // warm-up: buffers allocated and touched, primitives created
  for (auto _ : st) benchmark::DoNotOptimize(s.model.forward(s.x.data(), B));
  flops(st, 2.0 * 60.36e6 * B);
}
BENCHMARK(BM_VitForward)->Arg(1)->Arg(128)->Unit(benchmark::kMicrosecond)->UseRealTime();

void BM_VitTrainStep(benchmark::State& st) {  // forward + backward (no optimizer), batch 128
  bench::SeedModel s(kB);
  auto step = [&] {
    s.model.params().zero_grad();
    s.model.forward(s.x.data(), kB);
    s.model.loss(s.y.data());
    s.model.backward(s.y.data());
  };
  step();  // warm-up: buffers allocated and touched, primitives created
  for (auto _ : st) {
    s.model.params().zero_grad();
    s.model.forward(s.x.data(), kB);
    s.model.loss(s.y.data());
    s.model.backward(s.y.data());
  }
  flops(st, 3.0 * 2.0 * 60.36e6 * kB);
}
BENCHMARK(BM_VitTrainStep)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

// BENCHMARK_MAIN, plus the ISA found and the kernels chosen (core/cpu.h) in the context header
// (and in --benchmark_format=json's "context").
int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("isa", bench::isa_line());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
