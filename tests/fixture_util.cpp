#include "fixture_util.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/rng.h"

namespace harvit::test {

data::Dataset toy_sines(int n, int64_t M, const std::vector<int>& classes) {
  static const float kFreq[] = {0.3f, 1.5f, 0.9f, 2.1f};
  static const char* kNames[] = {"slow", "fast", "mid", "faster"};
  data::Dataset ds;
  ds.name = "toy";
  ds.T = 16;
  ds.M = M;
  const int C = *std::max_element(classes.begin(), classes.end()) + 1;
  for (int c = 0; c < C; ++c) ds.class_names.push_back(kNames[c]);
  for (int64_t m = 0; m < M; ++m) ds.axis_names.push_back(std::string(1, char('a' + m)));
  Rng rng(9);
  for (int i = 0; i < n; ++i) {
    const int c = classes[i % classes.size()];
    const float phase = rng.uniform(0, 6.28f);
    for (int t = 0; t < ds.T; ++t) {
      ds.x.push_back(std::sin(phase + t * kFreq[c]) + 0.1f * rng.normal());
      for (int64_t m = 1; m < M; ++m) ds.x.push_back(rng.normal());
    }
    ds.y.push_back(c);
    ds.subject.push_back(i % 8);
    ds.run.push_back(i);
    ds.pos.push_back(0);
    ds.split.push_back(i % 8 == 7 ? data::kTest : i % 8 == 6 ? data::kVal : data::kTrain);
  }
  ds.info = {{"given_split", false}};
  data::fit_normalize(ds);
  return ds;
}

std::string source_path(const std::string& rel) { return std::string(HARVIT_SOURCE_DIR) + "/" + rel; }

void fixture_params(nn::Vit& model, uint64_t seed) {
  auto& ps = model.params();
  const auto& infos = ps.infos();
  for (size_t k = 0; k < infos.size(); ++k) {
    const auto& p = infos[k];
    float* v = ps.values() + p.offset;
    const float bound = p.fan_in ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.fan_in))) : 0.f;
    for (int64_t i = 0; i < p.size; ++i) {
      const float u = fixture_uniform(seed, k, i);
      if (p.name == "position_embedding") v[i] = 0.02f * u;
      else if (p.init == nn::Init::Ones) v[i] = 1.0f + 0.1f * u;
      else if (p.init == nn::Init::Zeros) v[i] = 0.1f * u;
      else v[i] = bound * u;
    }
  }
}

void fixture_batch(const nn::VitConfig& c, uint64_t seed, uint64_t stream, int64_t B,
                   std::vector<float>& x, std::vector<int32_t>& y) {
  x.resize(B * c.T * c.M);
  y.resize(B);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 2.0f * fixture_uniform(seed, stream, i);
  for (int64_t b = 0; b < B; ++b) {
    const double u = fixture_uniform(seed, stream + 1, b);
    y[b] = std::min<int32_t>(static_cast<int32_t>((u + 1.0) * 0.5 * c.C), c.C - 1);
  }
}

Diff compare(const float* got, const float* want, size_t n) {
  Diff d;
  for (size_t i = 0; i < n; ++i) {
    const double g = got[i], w = want[i];
    if (!std::isfinite(g) || !std::isfinite(w)) {
      ++d.nonfinite;
      continue;
    }
    d.max_abs = std::max(d.max_abs, std::fabs(g - w));
    d.max_ref = std::max(d.max_ref, std::fabs(w));
  }
  if (d.nonfinite) d.max_abs = std::numeric_limits<double>::infinity();
  return d;
}

bool ErrTally::add(double err, double tol) {
  ++n;
  const double e = std::isfinite(err) ? err : std::numeric_limits<double>::infinity();  // NaN -> +inf
  const bool ok = e <= tol;
  worst = std::max(worst, e);
  bad += !ok;
  return ok;
}

}  // namespace harvit::test
