#include "core/stages.h"

namespace harvit::stages {

namespace {
struct State {
  bool on = false;
  std::vector<Row> rows;
};
State& state() {
  thread_local State s;
  return s;
}
}  // namespace

void enable(bool on) { state().on = on; }
bool enabled() { return state().on; }
void clear() { state().rows.clear(); }
const std::vector<Row>& table() { return state().rows; }

void Clock::record(const char* name, int64_t index) {
  const auto now = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(now - t_).count();
  std::string key = name;
  if (index >= 0) {
    const auto space = key.find(' ');  // "block q|k|v", 1 -> "block 1 q|k|v"
    key.insert(space == std::string::npos ? key.size() : space, " " + std::to_string(index));
  }
  auto& rows = state().rows;
  Row* row = nullptr;
  for (Row& r : rows)
    if (r.name == key) row = &r;
  if (!row) row = &rows.emplace_back(Row{key});
  row->seconds += s;
  ++row->count;
  t_ = std::chrono::steady_clock::now();  // the bookkeeping above is not charged to the next stage
}

}  // namespace harvit::stages
