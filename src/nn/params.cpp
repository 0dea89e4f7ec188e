#include "nn/params.h"

#include <algorithm>
#include <cmath>

namespace harvit::nn {

int64_t ParamSlab::add(const std::string& name, Shape shape, Init init, int64_t fan_in, int64_t at) {
  if (!values_.empty()) fail("ParamSlab::add(" + name + ") after finalize()");
  if (find(name)) fail("duplicate parameter name " + name);
  if (init == Init::Uniform && fan_in <= 0) fail("parameter " + name + " needs a fan_in");
  ParamInfo p{name, shape, at < 0 ? total_ : at, harvit::numel(shape), fan_in, init};
  if (at >= 0 && at + p.size > total_) fail("parameter " + name + " placed outside the slab");
  infos_.push_back(p);
  if (at < 0) total_ += p.size;
  return p.offset;
}

int64_t ParamSlab::reserve(int64_t n) {
  if (!values_.empty()) fail("ParamSlab::reserve after finalize()");
  const int64_t off = total_;
  total_ += n;
  return off;
}

void ParamSlab::finalize() {
  // Every float of the slab belongs to exactly one tensor (reserved regions fully placed):
  // sorted by offset, each tensor starts where the previous one ended.
  std::vector<std::pair<int64_t, const ParamInfo*>> by_offset;
  for (const auto& p : infos_) by_offset.push_back({p.offset, &p});
  std::sort(by_offset.begin(), by_offset.end());
  int64_t next = 0;
  for (const auto& [off, p] : by_offset) {
    if (off != next)
      fail("parameter slab layout: " + p->name + " starts at float " + std::to_string(off) + ", expected " +
           std::to_string(next) + (off < next ? " (overlap)" : " (gap)"));
    next = off + p->size;
  }
  if (next != total_) fail("parameter slab layout: floats " + std::to_string(next) + ".. are reserved but unused");
  values_.assign(total_, 0.0f);
  grads_.assign(total_, 0.0f);
}

const ParamInfo* ParamSlab::find(const std::string& name) const {
  for (const auto& p : infos_)
    if (p.name == name) return &p;
  return nullptr;
}

const ParamInfo& ParamSlab::info(const std::string& name) const {
  const ParamInfo* p = find(name);
  if (!p) fail("no parameter named " + name);
  return *p;
}

void ParamSlab::zero_grad() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

void ParamSlab::init_default(Rng& rng) {
  for (const auto& p : infos_) {
    float* v = values_.data() + p.offset;
    switch (p.init) {
      case Init::Uniform: {
        const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(p.fan_in)));
        for (int64_t i = 0; i < p.size; ++i) v[i] = rng.uniform(-bound, bound);
        break;
      }
      case Init::Ones: std::fill(v, v + p.size, 1.0f); break;
      case Init::Zeros: std::fill(v, v + p.size, 0.0f); break;
    }
  }
}

}  // namespace harvit::nn
