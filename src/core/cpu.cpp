// Run-time CPU detection and the start-up check. Compiled for plain x86-64 (CMakeLists.txt):
// the constructor below runs before main and before every other static initialiser of the
// program (constructor priority 101; .init_array entries with a priority run first), so on a CPU
// without the build's baseline (AVX2 and FMA for x86-64-v3) it prints what is missing and exits
// before any AVX2 instruction can run. It is linked into every executable that links harvit_lib
// (an object of the INTERFACE sources, not an archive member the linker could leave out), and
// uses only C library calls: an inline std:: function emitted in an x86-64-v3 translation unit
// could be the copy the linker keeps.
#include "core/cpu.h"

#include <cpuid.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/gemm.h"
#include "core/int8_gemm.h"

namespace harvit::cpu {
namespace detail {
extern const uint32_t kBaseline;   // cpu_baseline.cpp
extern const char kBaselineName[];
}  // namespace detail

namespace {

constexpr uint32_t kLvlAvx2 = kSse42 | kAvx | kAvx2 | kFma | kF16c | kBmi2;
constexpr uint32_t kLvlAvx512 = kLvlAvx2 | kAvx512f | kAvx512bw | kAvx512vl | kAvx512dq | kAvx512cd;
constexpr uint32_t kLvlAvx512Vnni = kLvlAvx512 | kAvx512Vnni | kAvxVnni;

struct Level {
  const char* name;
  uint32_t mask;
  dnnl_cpu_isa_t onednn;  // dnnl_cpu_isa_all = leave oneDNN alone
};
const Level kLevels[] = {
    {"x86-64", 0, dnnl_cpu_isa_sse41},
    {"avx2", kLvlAvx2, dnnl_cpu_isa_avx2},
    {"avx_vnni", kLvlAvx2 | kAvxVnni, dnnl_cpu_isa_avx2_vnni},
    {"avx512", kLvlAvx512, dnnl_cpu_isa_avx512_core},
    {"avx512_vnni", kLvlAvx512Vnni, dnnl_cpu_isa_avx512_core_vnni},
    {"avx512_bf16", kLvlAvx512Vnni | kAvx512Bf16, dnnl_cpu_isa_avx512_core_bf16},
    {"amx", ~0u, dnnl_cpu_isa_all},
    {"native", ~0u, dnnl_cpu_isa_all},
};

const char* const kNames[] = {"sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl",
                              "avx512dq", "avx512cd", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                              "amx_tile", "amx_int8", "amx_bf16"};
constexpr int kNumFeatures = sizeof(kNames) / sizeof(kNames[0]);

uint32_t g_detected = 0, g_cap = ~0u;
bool g_ready = false;
char g_cap_name[32] = "";

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

uint32_t detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const bool osxsave = c & (1u << 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;             // XMM, YMM state
  const bool os_avx512 = (xcr0 & 0xe6) == 0xe6;        // + opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & (3u << 17)) == (3u << 17);  // XTILECFG, XTILEDATA
  uint32_t f = 0;
  if (c & (1u << 20)) f |= kSse42;
  if (os_avx && (c & (1u << 28))) f |= kAvx;
  if (os_avx && (c & (1u << 12))) f |= kFma;
  if (os_avx && (c & (1u << 29))) f |= kF16c;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const unsigned max_sub = a;
  if (os_avx && (b & (1u << 5))) f |= kAvx2;
  if (b & (1u << 8)) f |= kBmi2;
  if (os_avx512) {
    if (b & (1u << 16)) f |= kAvx512f;
    if (b & (1u << 17)) f |= kAvx512dq;
    if (b & (1u << 28)) f |= kAvx512cd;
    if (b & (1u << 30)) f |= kAvx512bw;
    if (b & (1u << 31)) f |= kAvx512vl;
    if (c & (1u << 11)) f |= kAvx512Vnni;
    if (d & (1u << 23)) f |= kAvx512Fp16;
  }
  if (os_amx) {
    if (d & (1u << 24)) f |= kAmxTile;
    if (d & (1u << 25)) f |= kAmxInt8;
    if (d & (1u << 22)) f |= kAmxBf16;
  }
  if (max_sub >= 1) {
    __cpuid_count(7, 1, a, b, c, d);
    if (os_avx && (a & (1u << 4))) f |= kAvxVnni;
    if (os_avx512 && (a & (1u << 5))) f |= kAvx512Bf16;
  }
  return f;
}

// names of f into buf (C only: runs before main)
void names_c(uint32_t f, char* buf, size_t n) {
  buf[0] = '\0';
  for (int i = 0; i < kNumFeatures; ++i)
    if (f & (1u << i)) {
      if (buf[0]) std::strncat(buf, " ", n - std::strlen(buf) - 1);
      std::strncat(buf, kNames[i], n - std::strlen(buf) - 1);
    }
}

// The start-up check's message into buf; false when nothing is missing.
bool check_c(uint32_t have, const char* cap, char* buf, size_t n) {
  const uint32_t missing = detail::kBaseline & ~have;
  if (!missing) return false;
  char need[256], lack[256];
  names_c(detail::kBaseline, need, sizeof need);
  names_c(missing, lack, sizeof lack);
  std::snprintf(buf, n,
                "harvit: this build (baseline %s) needs a CPU with %s; this CPU%s%s%s lacks %s. Build for this CPU "
                "with cmake -DHARVIT_NATIVE=ON, or run on an x86-64-v3 (AVX2) CPU or newer.\n",
                detail::kBaselineName, need, cap[0] ? " with HARVIT_ISA=" : "", cap, cap[0] ? " (a cap)" : "", lack);
  return true;
}

void init() {
  if (g_ready) return;
  g_ready = true;
  g_detected = detect();
  const char* e = std::getenv("HARVIT_ISA");
  if (e && *e) {
    const Level* lv = nullptr;
    for (const Level& l : kLevels)
      if (std::strcmp(e, l.name) == 0) lv = &l;
    if (!lv) {
      std::fprintf(stderr,
                   "harvit: HARVIT_ISA=%s is not one of x86-64, avx2, avx_vnni, avx512, avx512_vnni, avx512_bf16, "
                   "amx, native\n",
                   e);
      std::_Exit(2);
    }
    g_cap = lv->mask;
    std::snprintf(g_cap_name, sizeof g_cap_name, "%s", lv->name);
    // oneDNN follows the cap (before its first primitive fixes its ISA); DNNL_MAX_CPU_ISA, its
    // own variable, still works when HARVIT_ISA is unset.
    if (lv->onednn != dnnl_cpu_isa_all) dnnl_set_max_cpu_isa(lv->onednn);
  }
  char msg[1024];
  if (check_c(g_detected & g_cap, g_cap_name, msg, sizeof msg)) {
    std::fputs(msg, stderr);
    std::_Exit(1);
  }
}

__attribute__((constructor(101))) void check_at_start() { init(); }

}  // namespace

uint32_t detected() {
  init();
  return g_detected;
}
uint32_t features() {
  init();
  return g_detected & g_cap;
}
const std::string& isa_cap() {
  init();
  static const std::string cap = g_cap_name;
  return cap;
}
uint32_t baseline() { return detail::kBaseline; }
const char* baseline_name() { return detail::kBaselineName; }

std::string names(uint32_t f) {
  char buf[512];
  names_c(f, buf, sizeof buf);
  return buf;
}

std::string baseline_check(uint32_t have, const std::string& cap) {
  char buf[1024];
  return check_c(have, cap.c_str(), buf, sizeof buf) ? std::string(buf) : std::string();
}

std::string onednn_isa() {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "isa " + std::to_string(static_cast<int>(dnnl_get_effective_cpu_isa()));
  }
}

std::vector<std::pair<std::string, std::string>> summary_fields() {
  const uint32_t d = detected();
  std::vector<std::pair<std::string, std::string>> f;
  f.emplace_back("cpu", names(d) + (d & kAmxTile ? "" : " (no amx)"));
  if (!isa_cap().empty()) {
    f.emplace_back("harvit_isa", isa_cap());
    f.emplace_back("caps_to", names(features()));
  }
  f.emplace_back("baseline", baseline_name());
  f.emplace_back("onednn", onednn_isa());
  f.emplace_back("int8_kernel", Int8Gemm::kernel_summary());
  f.emplace_back("small_fp32_gemm", small_gemm_kernel());
  f.emplace_back("stream_fp32_gemm", std::string("harvit ") + PackedB::kernel_name() + " over packed panels");
  return f;
}

std::string summary() {
  std::string s;
  for (const auto& [k, v] : summary_fields()) {
    if (k == "harvit_isa") {
      s += "; HARVIT_ISA=" + v;
      continue;
    }
    const char* label = k == "cpu" ? "CPU: " : k == "caps_to" ? " caps harvit to: " : k == "baseline" ? "; build baseline: "
                      : k == "onednn" ? "; oneDNN: " : k == "int8_kernel" ? "; int8 kernel: "
                      : k == "stream_fp32_gemm" ? "; streaming fp32 GEMM: " : "; small fp32 GEMM: ";
    s += label + v;
  }
  return s;
}

}  // namespace harvit::cpu
