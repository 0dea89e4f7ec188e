// One thread pool (OpenMP's; oneDNN shares it) for training and batch inference, and a serial
// mode for callers that must not touch it: a streaming recogniser runs inside someone else's
// sensor callback, where waking (or spinning) a pool of threads would burn cores the host
// program owns, and where libgomp allocates a team on every parallel region, even a region of
// one thread.
//
// parallel_for runs its loop on the pool when the work is big enough and the calling thread is
// not in serial mode; otherwise it is a plain loop on the calling thread that never enters
// libgomp. A SerialScope puts the calling thread in serial mode (and sets its OpenMP thread
// count to 1, so oneDNN calls made meanwhile stay on this thread too); scopes nest.
#pragma once
#include <cstdint>

namespace harvit {

// Whether the calling thread is inside a SerialScope.
bool serial_mode();

class SerialScope {
 public:
  SerialScope();
  ~SerialScope();
  SerialScope(const SerialScope&) = delete;
  SerialScope& operator=(const SerialScope&) = delete;

 private:
  bool was_serial_;
  int threads_;
};

// for i in [0, n): f(i). On the pool (static schedule) when `big` and not in serial mode.
template <class F>
void parallel_for(int64_t n, bool big, F&& f) {
  if (!big || serial_mode()) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) f(i);
}

// for (i, j) in [0, n) x [0, m): f(i, j), the pairs shared among the threads as collapse(2).
template <class F>
void parallel_for_2d(int64_t n, int64_t m, bool big, F&& f) {
  if (!big || serial_mode()) {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) f(i, j);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) f(i, j);
}

}  // namespace harvit
