// The processes of one job and the few collectives harvit needs (data-parallel training,
// cross-validation folds spread over ranks). Comm::local() is the one process of a job started
// without mpirun: every collective is then the identity. The MPI implementation
// (src/core/comm_mpi.{h,cpp}) is built when CMake finds MPI and linked into the CLI, the tests
// and the benches, never into libharvit, so a program that embeds the recogniser does not
// depend on MPI. No home-made networking: everything between processes goes through MPI.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace harvit {

// An error every rank of a job meets at the same point (a check of options or data made with
// collectives): rank 0 reports it and every rank ends normally, instead of N reports and
// MPI_Abort's banner.
struct CollectiveError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Comm {
 public:
  virtual ~Comm() = default;
  virtual int rank() const { return 0; }
  virtual int size() const { return 1; }
  // Ranks of this job on this machine (to share its cores without oversubscription).
  virtual int local_size() const { return 1; }
  bool root() const { return rank() == 0; }
  bool distributed() const { return size() > 1; }
  // In place, the same result on every rank.
  virtual void allreduce_sum(float* x, int64_t n) {}
  virtual void allreduce_sum(double* x, int64_t n) {}
  virtual void allreduce_max(int64_t* x, int64_t n) {}
  // Non-blocking sums in place: start_allreduce_sum returns at once (every rank must start the
  // same sequence of them); progress() lets the library move them on between pieces of other
  // work; finish_allreduces() waits for all those started. x must stay untouched until then.
  virtual void start_allreduce_sum(float* x, int64_t n) {}
  virtual void progress() {}
  virtual void finish_allreduces() {}
  // root's bytes to every rank.
  virtual void broadcast(void* data, int64_t bytes, int root = 0) {}
  void broadcast(std::string& s, int root = 0);
  // Every rank's string, in rank order, at root (the others get an empty vector).
  virtual std::vector<std::string> gather(const std::string& s, int root = 0) { return {s}; }
  virtual void barrier() {}
  // Ends the whole job (every rank) with `why` on stderr and exit status `code`; a rank that
  // fails while the others wait in a collective must call this instead of returning, or the
  // job hangs.
  [[noreturn]] virtual void abort(const std::string& why, int code = 1);
  // "1 process" or "MPI, 4 ranks on 2 machines".
  virtual std::string describe() const { return "1 process"; }

  static Comm& local();
};

}  // namespace harvit
