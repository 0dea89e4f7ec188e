// Helpers shared by the tests: the deterministic fixture parameters/batches that
// tools/torch_reference.py also generates, and comparison reports.
#pragma once
#include <string>
#include <vector>

#include "nn/vit.h"

namespace harvit::test {

std::string source_path(const std::string& rel);  // path inside the source tree
// Same rule as fixture_params() in tools/torch_reference.py.
void fixture_params(nn::Vit& model, uint64_t seed);
void fixture_batch(const nn::VitConfig& c, uint64_t seed, uint64_t stream, int64_t B,
                   std::vector<float>& x, std::vector<int32_t>& y);

struct Diff {
  double max_abs = 0, max_ref = 0;
  double rel() const { return max_abs / (max_ref > 0 ? max_ref : 1.0); }
};
Diff compare(const float* got, const float* want, size_t n);

}  // namespace harvit::test
