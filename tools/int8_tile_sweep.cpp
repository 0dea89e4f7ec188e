// Tile-shape sweep for the int8 register-tile kernels (docs/performance.md, "Tile shapes"): includes
// the kernel translation units and times run<V, rows, blocks> directly on one core, weights hot.
// Not part of the CMake build (it needs the ISA flags for the whole file and an AVX-512 CPU):
//   g++ -std=c++20 -O3 -DNDEBUG -march=x86-64-v3 -mavx512f -mavx512bw -mavx512vl -mavx512dq \
//       -mavx512vnni -mavxvnni -Isrc -w tools/int8_tile_sweep.cpp -o /tmp/sweep && taskset -c 1 /tmp/sweep
// -DNO_VNNI (and without -mavx512vnni -mavxvnni) sweeps the AVX-512BW and AVX2 kernels instead.
#ifndef NO_VNNI
#define HARVIT_INT8_AVX512VNNI 1
#endif
#include "core/int8_gemm_avx512.cpp"
#undef HARVIT_TILE_ROWS
#undef HARVIT_TILE_BLOCKS
#ifndef NO_VNNI
#define HARVIT_INT8_AVXVNNI 1
#endif
#include "core/int8_gemm_avx2.cpp"
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>
#include <random>

using namespace harvit::int8k;
struct Shape { int64_t R, IN, OUT; };
const Shape shapes[] = {{96, 256, 768}, {96, 256, 256}, {48, 512, 256}, {1, 3072, 1024}, {24, 1024, 256}};

template <class V, int RB, int NB>
void bench(const char* isa) {
  double total = 0;
  std::printf("%-8s %dx%-4d", isa, RB, NB * V::BLOCK);
  for (const Shape& s : shapes) {
    const int64_t B = V::BLOCK, OUTp = (s.OUT + B - 1) / B * B, kg = s.IN / 4;
    std::vector<uint8_t> a(s.R * s.IN);
    std::vector<int8_t> w(OUTp * s.IN);
    std::vector<float> as(s.R, 0.01f), wsc(OUTp, 0.02f), bias(OUTp, 0.1f), out(s.R * s.OUT);
    std::vector<int32_t> azp(s.R, 0), wsum(OUTp, 5);
    std::mt19937 g(1);
    for (auto& v : a) v = g() & 255;
    for (auto& v : w) v = int8_t(int(g() % 127) - 63);
    Args ar{a.data(), s.IN, w.data(), kg, as.data(), azp.data(), wsum.data(), wsc.data(), bias.data(), out.data(), s.OUT};
    const int64_t nob = OUTp / B;
    double best = 1e30;
    for (int rep = 0; rep < 200; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      // same loop order as Int8Gemm::forward: output tiles outer, row tiles inner
      for (int64_t ot = 0; ot < (nob + NB - 1) / NB; ++ot)
        for (int64_t rt = 0; rt < (s.R + RB - 1) / RB; ++rt)
          run<V, RB, NB>(ar, rt * RB, std::min(s.R, (rt + 1) * RB), ot * NB, std::min(nob, (ot + 1) * NB));
      best = std::min(best, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
    total += best;
    std::printf("  %7.1f us (%4.0f GOP/s)", best, 2.0 * s.R * s.IN * s.OUT / best / 1e3);
  }
  std::printf("  | sum %.1f us\n", total);
}

int main() {
  std::printf("shapes (R x IN -> OUT): 96x256->768, 96x256->256, 48x512->256, 1x3072->1024, 24x1024->256; 1 thread, best of 200\n");
#ifndef NO_VNNI
  bench<V512, 1, 4>("avx512v");
  bench<V512, 1, 8>("avx512v");
  bench<V512, 2, 8>("avx512v");
  bench<V512, 4, 4>("avx512v");
  bench<V512, 6, 4>("avx512v");
  bench<V512, 8, 2>("avx512v");
  bench<V512, 8, 3>("avx512v");
  bench<V512, 12, 1>("avx512v");
  bench<V256, 1, 8>("avxvnni");
  bench<V256, 2, 4>("avxvnni");
  bench<V256, 3, 4>("avxvnni");
  bench<V256, 5, 2>("avxvnni");
#else
  bench<V512, 1, 4>("avx512bw");
  bench<V512, 6, 4>("avx512bw");
  bench<V512, 8, 2>("avx512bw");
  bench<V256, 1, 8>("avx2");
  bench<V256, 3, 2>("avx2");
  bench<V256, 5, 2>("avx2");
#endif
}
