// Proof of the streaming recogniser's two promises to a host program (deploy/stream.h): after
// construction, pushing samples allocates no heap memory, and it never starts (or wakes) a thread
// pool. This executable replaces the C allocator (malloc, calloc, realloc, the aligned forms) with
// counting wrappers over glibc's own, which also counts operator new (it calls malloc) and the
// allocations of libgomp and oneDNN; so it is not built with the sanitizers, which replace them
// too. Threads are counted from /proc/self/status, in a process where nothing else ran before.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "deploy/stream.h"
#include "stream_fixture.h"

extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
}

namespace {
std::atomic<long> g_allocs{0};
std::atomic<bool> g_counting{false};
inline void count() {
  if (g_counting.load(std::memory_order_relaxed)) g_allocs.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) { count(); return __libc_malloc(n); }
void free(void* p) { __libc_free(p); }
void* calloc(size_t a, size_t b) { count(); return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { count(); return __libc_realloc(p, n); }
void* memalign(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
void* aligned_alloc(size_t a, size_t n) { count(); return __libc_memalign(a, n); }
int posix_memalign(void** r, size_t a, size_t n) {
  count();
  *r = __libc_memalign(a, n);
  return *r ? 0 : 12;
}
}

using namespace harvit;

namespace {

int threads_now() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return -1;
}

// Allocations made by f (all threads).
template <class F>
long allocations_in(F&& f) {
  g_allocs = 0;
  g_counting = true;
  f();
  g_counting = false;
  return g_allocs.load();
}

struct AllocTest : ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(AllocTest, PushAllocatesNothingAndStartsNoThread) {
  const auto [kind, precision] = GetParam();
  const auto dir = test::temp_dir("stream_alloc_" + kind + precision);
  const auto ck = test::write_stream_checkpoint(dir, kind, /*full_size=*/true);
  const int threads_before = threads_now();
  deploy::StreamOptions o;
  o.precision = precision;
  o.hop = 16;
  o.smooth = 5;
  o.hysteresis = 2;
  o.queue = 8;
  o.max_gap_ns = 50'000'000;
  deploy::StreamRecognizer s(ck, o);
  const int64_t n = 1200;
  const auto x = test::stream_samples(n, 9);
  std::vector<int64_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = 20'000'000LL * i + (i >= 500 ? 500'000'000LL : 0);  // one gap
  deploy::Decision d;
  int64_t made = 0, read = 0;
  const long allocs = allocations_in([&] {
    for (int64_t i = 0; i < 400; ++i) made += s.push(x.data() + i * 3, 1, t.data() + i);  // one at a time
    while (s.next(d)) ++read;
    made += s.push(x.data() + 400 * 3, 500, t.data() + 400);  // a block (the queue overflows)
    while (s.next(d)) ++read;
    s.reset();
    made += s.push(x.data() + 900 * 3, 300, t.data() + 900);
    while (s.next(d)) ++read;
  });
  EXPECT_EQ(allocs, 0) << kind << " " << precision << ": heap allocations while pushing";
  EXPECT_GT(made, 50);
  EXPECT_GT(read, 0);
  EXPECT_EQ(s.gaps(), 1);
  EXPECT_GT(s.dropped(), 0);
  // No thread pool: the process has the threads it had before the recogniser existed.
  EXPECT_EQ(threads_now(), threads_before) << "threads before " << threads_before;
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Models, AllocTest,
                         ::testing::Combine(::testing::Values("vit", "cnn"), ::testing::Values("fp32", "int8")));

// The sanity check of the counter itself: a push that must allocate is seen.
TEST(AllocCounter, SeesAllocations) {
  const long n = allocations_in([] {
    std::vector<float> v(1000);
    v[0] = 1;
    EXPECT_EQ(v[0], 1);
  });
  EXPECT_GE(n, 1);
}

// A recogniser constructed on one thread and fed from another (a sensor callback thread): the
// per-thread scratch of the small GEMM kernels is made on that thread's first push, once; every
// later push allocates nothing.
TEST(AllocThread, PushFromAnotherThreadAllocatesOnlyOnItsFirstHop) {
  const auto dir = test::temp_dir("stream_alloc_thread");
  const auto ck = test::write_stream_checkpoint(dir, "vit", /*full_size=*/true);
  deploy::StreamOptions o;
  o.hop = 16;
  deploy::StreamRecognizer s(ck, o);
  const auto x = test::stream_samples(600, 10);
  long later = -1;
  std::thread th([&] {
    s.push(x.data(), 200);  // warms this thread
    later = allocations_in([&] { s.push(x.data() + 200 * 3, 400); });
  });
  th.join();
  EXPECT_EQ(later, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
