#include "core/comm_mpi.h"

#include <mpi.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <set>
#include <stdexcept>

namespace harvit {

namespace {

void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(std::string("MPI: ") + what + ": " + std::string(msg, len));
}

// MPI counts are int: long buffers go in chunks.
constexpr int64_t kChunk = int64_t(1) << 30;

class MpiComm final : public Comm {
 public:
  using Comm::broadcast;
  MpiComm(int* argc, char*** argv) {
    int provided = 0;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_FUNNELED)  // OpenMP threads run beside the one thread that calls MPI
      throw std::runtime_error("MPI: the library does not support threads (MPI_THREAD_FUNNELED)");
    // Errors come back as codes (turned into exceptions, then MPI_Abort with a message) instead
    // of MPI's default of aborting without saying where.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "split by node");
    MPI_Comm_size(node, &local_size_);
    // machines: the distinct host names
    char host[MPI_MAX_PROCESSOR_NAME] = {};
    int len = 0;
    MPI_Get_processor_name(host, &len);
    auto hosts = gather(std::string(host, len), 0);
    std::string joined;
    for (auto& h : hosts) joined += h + '\n';
    broadcast(joined, 0);
    std::set<std::string> distinct;
    for (size_t a = 0, b; (b = joined.find('\n', a)) != std::string::npos; a = b + 1) distinct.insert(joined.substr(a, b - a));
    machines_ = static_cast<int>(distinct.size());
    MPI_Comm_free(&node);
  }
  ~MpiComm() override { MPI_Finalize(); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_size() const override { return local_size_; }

  void allreduce_sum(float* x, int64_t n) override {
    for (int64_t o = 0; o < n; o += kChunk)
      check(MPI_Allreduce(MPI_IN_PLACE, x + o, int(std::min(kChunk, n - o)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD),
            "allreduce");
  }
  void allreduce_sum(double* x, int64_t n) override {
    for (int64_t o = 0; o < n; o += kChunk)
      check(MPI_Allreduce(MPI_IN_PLACE, x + o, int(std::min(kChunk, n - o)), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD),
            "allreduce");
  }
  void allreduce_max(int64_t* x, int64_t n) override {
    for (int64_t o = 0; o < n; o += kChunk)
      check(MPI_Allreduce(MPI_IN_PLACE, x + o, int(std::min(kChunk, n - o)), MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD),
            "allreduce");
  }
  void start_allreduce_sum(float* x, int64_t n) override {
    for (int64_t o = 0; o < n; o += kChunk) {
      pending_.emplace_back();
      check(MPI_Iallreduce(MPI_IN_PLACE, x + o, int(std::min(kChunk, n - o)), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                           &pending_.back()),
            "iallreduce");
    }
  }
  void progress() override {
    if (pending_.empty()) return;
    int done = 0;
    check(MPI_Testall(int(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE), "testall");
    if (done) pending_.clear();
  }
  void finish_allreduces() override {
    if (pending_.empty()) return;
    check(MPI_Waitall(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "waitall");
    pending_.clear();
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    for (int64_t o = 0; o < bytes; o += kChunk)
      check(MPI_Bcast(p + o, int(std::min(kChunk, bytes - o)), MPI_BYTE, root, MPI_COMM_WORLD), "broadcast");
  }
  std::vector<std::string> gather(const std::string& s, int root) override {
    int n = static_cast<int>(s.size());
    std::vector<int> sizes(rank_ == root ? size_ : 0), offsets;
    check(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, root, MPI_COMM_WORLD), "gather sizes");
    std::string all;
    if (rank_ == root) {
      int64_t total = 0;
      for (int v : sizes) offsets.push_back(int(total)), total += v;
      if (total > INT32_MAX) throw std::runtime_error("MPI gather: over 2 GiB of results");
      all.resize(total);
    }
    check(MPI_Gatherv(s.data(), n, MPI_BYTE, all.data(), sizes.data(), offsets.data(), MPI_BYTE, root, MPI_COMM_WORLD),
          "gather");
    std::vector<std::string> out;
    for (int r = 0; rank_ == root && r < size_; ++r) out.push_back(all.substr(offsets[r], sizes[r]));
    return out;
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "barrier"); }
  [[noreturn]] void abort(const std::string& why, int code) override {
    std::fprintf(stderr, "harvit: error on rank %d of %d: %s (ending the job)\n", rank_, size_, why.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }
  std::string describe() const override {
    return "MPI, " + std::to_string(size_) + " ranks on " + std::to_string(machines_) +
           (machines_ == 1 ? " machine" : " machines");
  }

 private:
  int rank_ = 0, size_ = 1, local_size_ = 1, machines_ = 1;
  std::vector<MPI_Request> pending_;
};

}  // namespace

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
    if (std::getenv(v)) return true;
  return false;
}

Comm& mpi_world(int* argc, char*** argv) {
  if (!launched_by_mpi()) return Comm::local();
  static MpiComm world(argc, argv);
  return world;
}

}  // namespace harvit
