// Where a forward pass spends its time, stage by stage: an opt-in table of wall times that a
// model's forward marks as it goes (bench_infer --stages prints it). Off by default: then a mark
// is one load and a branch. The table belongs to the calling thread (the thread that runs the
// forward; a stage's time includes the pool's work inside it).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace harvit::stages {

struct Row {
  std::string name;  // "patch embedding", "block 0 q|k|v", ...
  double seconds = 0;
  int64_t count = 0;
};

// Turn recording on or off for the calling thread; clear() empties its table.
void enable(bool on);
bool enabled();
void clear();
// The calling thread's table, stages in the order first seen.
const std::vector<Row>& table();

// One forward's clock: mark(name) charges the time since the previous mark (or construction) to
// `name`, with `index` appended when >= 0 ("block 1 attention").
class Clock {
 public:
  Clock() : on_(enabled()) {
    if (on_) t_ = std::chrono::steady_clock::now();
  }
  void mark(const char* name, int64_t index = -1) {
    if (on_) record(name, index);
  }

 private:
  void record(const char* name, int64_t index);
  bool on_;
  std::chrono::steady_clock::time_point t_;
};

}  // namespace harvit::stages
