// The gradient allreduce of data-parallel training, alone: MPI_Allreduce (sum, in place) of the
// seed ViT's gradient slab (4,367,366 floats, 17.5 MB) and of smaller buffers, median time over
// repetitions, the algorithm bandwidth (bytes / time) and the bus bandwidth (x 2(N-1)/N, what a
// ring moves per rank: comparable to the link's speed). Run under mpirun:
//   mpirun -np 2 --oversubscribe build/release/bench/bench_allreduce
// One JSON line per size (rank 0). docs/performance.md uses it for the scaling model.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "bench_common.h"
#include "core/comm_mpi.h"
#include "nn/vit.h"

using namespace harvit;

int main(int argc, char** argv) {
  Comm& comm = mpi_world(&argc, &argv);
  const int64_t slab = nn::Vit(nn::VitConfig{}).params().count();
  if (comm.root())
    std::printf("# %s; %s\n# seed ViT gradient slab: %lld floats (%.1f MB)\n", comm.describe().c_str(),
                bench::isa_line().c_str(), (long long)slab, slab * 4e-6);
  for (int64_t n : {int64_t(256), int64_t(16384), int64_t(262144), slab}) {
    std::vector<float> x(n, 1.0f);
    const int reps = n >= slab ? 30 : 200;
    std::vector<double> ms;
    for (int r = 0; r < reps + 3; ++r) {
      comm.barrier();
      const auto t0 = std::chrono::steady_clock::now();
      comm.allreduce_sum(x.data(), n);
      const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r >= 3) ms.push_back(t);
      std::fill(x.begin(), x.end(), 1.0f);
    }
    std::sort(ms.begin(), ms.end());
    // the mean of the ranks' medians
    double med = ms[ms.size() / 2];
    comm.allreduce_sum(&med, 1);
    med /= comm.size();
    const double bytes = 4.0 * n, algbw = bytes / (med * 1e-3) / 1e9;
    if (comm.root())
      std::printf("{\"ranks\": %d, \"floats\": %lld, \"mbytes\": %.3f, \"median_ms\": %.4f, \"algbw_gb_s\": %.3f, "
                  "\"busbw_gb_s\": %.3f}\n",
                  comm.size(), (long long)n, bytes * 1e-6, med, algbw, algbw * 2.0 * (comm.size() - 1) / comm.size());
  }
  return 0;
}
