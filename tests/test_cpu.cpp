// Run-time CPU detection (core/cpu.h): the features found, the HARVIT_ISA cap, the start-up
// check's message, the one-line summary that harvit info and the benches print.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "core/cpu.h"
#include "core/gemm.h"
#include "core/int8_gemm.h"

using namespace harvit;

TEST(Cpu, ThisCpuRunsTheBuildsBaseline) {
  // The start-up check let this test start, so the CPU has the baseline (x86-64-v3 by default:
  // avx2 fma f16c bmi2; more with HARVIT_NATIVE).
  EXPECT_EQ(cpu::baseline() & ~cpu::features(), 0u) << "baseline " << cpu::names(cpu::baseline()) << ", have "
                                                    << cpu::names(cpu::features());
  EXPECT_EQ(cpu::baseline_check(cpu::features(), cpu::isa_cap()), "");
  std::printf("detected: %s\nbaseline (%s): %s\n", cpu::names(cpu::detected()).c_str(), cpu::baseline_name(),
              cpu::names(cpu::baseline()).c_str());
}

TEST(Cpu, FeaturesAreConsistent) {
  const uint32_t d = cpu::detected(), f = cpu::features();
  EXPECT_EQ(f & ~d, 0u) << "a cap never adds what the CPU lacks";
  auto implies = [&](uint32_t a, uint32_t b, const char* what) {
    if ((d & a) == a) {
      EXPECT_EQ(d & b, b) << what;
    }
  };
  implies(cpu::kAvx2, cpu::kAvx, "avx2 -> avx");
  implies(cpu::kAvx512bw, cpu::kAvx512f, "avx512bw -> avx512f");
  implies(cpu::kAvx512Vnni, cpu::kAvx512f, "avx512_vnni -> avx512f");
  implies(cpu::kAmxInt8, cpu::kAmxTile, "amx_int8 -> amx_tile");
  EXPECT_EQ(cpu::names(cpu::kAvx2 | cpu::kFma | cpu::kAvx512Vnni), "avx2 fma avx512_vnni");
  EXPECT_EQ(cpu::names(0), "");
  // A cap set for this process (the ctest variants run with HARVIT_ISA) shows in features().
  const char* cap = std::getenv("HARVIT_ISA");
  if (cap && std::string(cap) == "avx2") {
    EXPECT_EQ(f & (cpu::kAvx512f | cpu::kAvx512Vnni | cpu::kAvxVnni | cpu::kAvx512Bf16), 0u);
    EXPECT_EQ(Int8Gemm::best(), Int8Isa::Avx2);
  }
  if (cap && std::string(cap) == "avx_vnni" && (d & cpu::kAvxVnni)) {
    EXPECT_EQ(Int8Gemm::best(), Int8Isa::AvxVnni);
  }
}

TEST(Cpu, StartupCheckNamesWhatIsMissing) {
  // What the constructor prints on a CPU without the baseline (here: a CPU with nothing).
  const std::string m = cpu::baseline_check(0, "");
  if (cpu::baseline() == 0) GTEST_SKIP() << "a build without a baseline (HARVIT_ARCH=x86-64) checks nothing";
  EXPECT_NE(m.find("lacks"), std::string::npos) << m;
  if (cpu::baseline() & cpu::kAvx2) {
    EXPECT_NE(m.find("avx2"), std::string::npos) << m;
  }
  EXPECT_NE(m.find(cpu::baseline_name()), std::string::npos) << m;
  EXPECT_NE(cpu::baseline_check(0, "avx2").find("HARVIT_ISA=avx2"), std::string::npos);
}

TEST(Cpu, SummaryNamesIsaOneDnnAndKernels) {
  const std::string s = cpu::summary();
  std::printf("%s\n", s.c_str());
  EXPECT_EQ(s.find('\n'), std::string::npos) << "one line";
  for (const char* part : {"CPU: ", "oneDNN: ", "int8 kernel: ", "small fp32 GEMM: ", "build baseline: "})
    EXPECT_NE(s.find(part), std::string::npos) << part << " missing in: " << s;
  EXPECT_NE(s.find(Int8Gemm::isa_name(Int8Gemm::best())), std::string::npos) << s;
  EXPECT_NE(s.find(small_gemm_kernel()), std::string::npos) << s;
  EXPECT_FALSE(cpu::onednn_isa().empty());
}
