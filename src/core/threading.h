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

// Two loops that must run one after the other (f1 over [0, n1), then f2 over the pairs of
// [0, n2) x [0, m2) as collapse(2)), in one parallel region with one barrier between them instead
// of two regions: a region's fork and join cost more than its barrier, and the first loop (too
// small on its own to wake the pool for) gets the threads too. Serial mode or !big: plain loops.
template <class F1, class F2>
void parallel_then_2d(int64_t n1, F1&& f1, int64_t n2, int64_t m2, F2&& f2, bool big) {
  if (!big || serial_mode()) {
    for (int64_t i = 0; i < n1; ++i) f1(i);
    for (int64_t i = 0; i < n2; ++i)
      for (int64_t j = 0; j < m2; ++j) f2(i, j);
    return;
  }
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n1; ++i) f1(i);
    // (the implicit barrier of the loop above: f2 sees every f1)
#pragma omp for collapse(2) schedule(static)
    for (int64_t i = 0; i < n2; ++i)
      for (int64_t j = 0; j < m2; ++j) f2(i, j);
  }
}

}  // namespace harvit
