// Helpers shared by the tests: the deterministic fixture parameters/batches that
// tools/torch_reference.py also generates, and comparison reports.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "nn/vit.h"

namespace harvit::test {

std::string source_path(const std::string& rel);  // path inside the source tree
// Same rule as fixture_params() in tools/torch_reference.py.
void fixture_params(nn::Vit& model, uint64_t seed);
void fixture_batch(const nn::VitConfig& c, uint64_t seed, uint64_t stream, int64_t B,
                   std::vector<float>& x, std::vector<int32_t>& y);

// A learnable toy dataset of n windows of 16 samples: window i has class classes[i % size]; class
// c is a sine of frequency {0.3, 1.5, 0.9, 2.1}[c] rad/sample with a random phase plus N(0, 0.01)
// on axis 0, and N(0, 1) on the other M - 1 axes. Subject i % 8; subject 7 is the test split, 6
// validation, the rest training; normalised on the training windows. The defaults are the trainer
// tests' two-class problem.
data::Dataset toy_sines(int n, int64_t M = 2, const std::vector<int>& classes = {0, 1});

// got against want, element by element. A NaN or inf on either side is a failure, never a
// perfect match: it is counted in `nonfinite`, makes max_abs and rel() +inf, so any
// EXPECT_LE(d.rel(), tol) fails (std::max(acc, NaN) keeps acc: a plain max would report an
// all-NaN result as identical).
struct Diff {
  double max_abs = 0, max_ref = 0;
  size_t nonfinite = 0;
  double rel() const {
    if (nonfinite) return std::numeric_limits<double>::infinity();
    return max_abs / (max_ref > 0 ? max_ref : 1.0);
  }
};
Diff compare(const float* got, const float* want, size_t n);

// Errors of many comparisons against one tolerance: how many, how many bad, the worst. A NaN or
// inf error is bad and becomes the worst (err > tol is false for a NaN, and std::max drops it).
struct ErrTally {
  int64_t n = 0, bad = 0;
  double worst = 0;
  bool add(double err, double tol);  // true when err is finite and <= tol
};

}  // namespace harvit::test
