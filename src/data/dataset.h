// Windows ready for training: the in-memory dataset, its versioned binary file, splits and
// normalisation. Produced by `harvit prepare`, read by train / eval.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace harvit::data {

enum Split : uint8_t { kTrain = 0, kVal = 1, kTest = 2, kDropped = 255 };
const char* split_name(uint8_t s);

// Skipped input, counted by kind, with the first few file:line positions of each kind.
struct ParseReport {
  int64_t records = 0;  // accepted records (samples or windows)
  std::map<std::string, int64_t> skipped;
  std::map<std::string, std::vector<std::string>> examples;
  void skip(const std::string& kind, const std::string& where);
  int64_t total_skipped() const;
  std::string summary() const;  // human-readable, one kind per line
  nlohmann::json to_json() const;
};

struct Dataset {
  std::string name;  // e.g. "wisdm-v1.1-windows"
  int64_t T = 0, M = 0;
  std::vector<std::string> class_names, axis_names;
  std::vector<float> x;         // (N, T, M)
  std::vector<int32_t> y;       // (N) class index
  std::vector<int32_t> subject; // (N) subject id as in the source
  std::vector<int32_t> run;     // (N) contiguous run id (windows of one run may overlap)
  std::vector<int32_t> pos;     // (N) window index inside its run (time order)
  std::vector<uint8_t> split;   // (N) Split
  std::vector<float> mean, std; // (M) z-score statistics fitted on train (empty = not normalised)
  int64_t stride = 0;           // window stride in samples (0 = windows do not overlap)
  nlohmann::json info;          // provenance: source, split settings, skipped records...

  int64_t size() const { return static_cast<int64_t>(y.size()); }
  int64_t count(uint8_t s) const;
  std::vector<int64_t> indices(uint8_t s) const;  // windows of split s, in file order
  void validate() const;  // internal consistency; throws
};

constexpr uint32_t kDatasetVersion = 1;
// Atomic write; load checks magic, version, sizes and every index.
void save_dataset(const std::string& path, const Dataset& ds);
Dataset load_dataset(const std::string& path);

// ---- splits ----------------------------------------------------------------------------------
struct SplitOptions {
  std::string kind = "given";        // chrono | subject | loso | given
  double train = 0.7, val = 0.1;     // chrono fractions (test = rest)
  std::vector<int32_t> test_subjects, val_subjects;  // subject: explicit lists
  double test_fraction = 0.2, val_fraction = 0.1;    // subject/loso/given: seeded fractions
  int fold = 0;                      // loso
  std::string val_by = "auto";       // given: subject | random | auto (subject if overlapping)
  uint64_t seed = 0;
};
// `given` uses the split already in ds.split (train/test from the source; val carved here).
// Windows overlapping across a boundary are marked kDropped. Fails if a part ends up empty.
void apply_split(Dataset& ds, const SplitOptions& opt);

// Fits per-axis mean/std on the training windows and normalises every window in place.
void fit_normalize(Dataset& ds);
// Applies given statistics to raw windows (T*M floats each) - used by predict/deploy.
void normalize_windows(float* x, int64_t n, int64_t T, int64_t M, const std::vector<float>& mean,
                       const std::vector<float>& std);

// Table of windows per class per split and subjects per split.
std::string dataset_summary(const Dataset& ds);

}  // namespace harvit::data
