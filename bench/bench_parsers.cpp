// Parser speed on the real datasets: WISDM-2019 raw (1.4 M lines), the whole UCI-HAPT raw set,
// UCI-HAR Inertial Signals. Prints the ISA line (core/cpu.h), then one line per dataset (seconds,
// records/s).
//   bench_parsers DATA_ROOT   (a folder holding the unpacked datasets, as tests/unpack_datasets.sh lays them out)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "bench_common.h"
#include "data/loaders.h"

using namespace harvit::data;

template <typename F>
double best_of(int reps, F&& f) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: bench_parsers DATA_ROOT\n");
    return 2;
  }
  std::printf("%s\n", harvit::bench::isa_line().c_str());
  const std::string root = argv[1];
  namespace fs = std::filesystem;
  if (fs::exists(root + "/wisdm-2019-phone-accel-partial")) {
    auto files = list_inputs(root + "/wisdm-2019-phone-accel-partial", "data_", "_accel_phone.txt");
    int64_t n = 0;
    double s = best_of(3, [&] { n = parse_wisdm_files(files).report.records; });
    std::printf("WISDM-2019 raw: %lld records from %zu files in %.3f s (%.1f M records/s, best of 3)\n", (long long)n,
                files.size(), s, n / s / 1e6);
  }
  if (fs::exists(root + "/uci-hapt")) {
    int64_t n = 0;
    double s = best_of(3, [&] {
      auto raw = load_hapt(root + "/uci-hapt");
      n = 0;
      for (auto& st : raw.streams) n += st.size();
    });
    std::printf("UCI-HAPT raw: %lld rows x 6 axes (61 acc + 61 gyro files) in %.3f s (%.1f M rows/s, best of 3)\n",
                (long long)n, s, n / s / 1e6);
  }
  if (fs::exists(root + "/uci-har")) {
    int64_t n = 0;
    double s = best_of(3, [&] { n = load_uci_har(root + "/uci-har").size(); });
    std::printf("UCI-HAR Inertial Signals: %lld windows x 9 x 128 in %.3f s (best of 3)\n", (long long)n, s);
  }
  return 0;
}
