#include "core/tensor.h"

#include <algorithm>
#include <sstream>

namespace harvit {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) fail("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

void fail(const std::string& msg) { throw std::runtime_error(msg); }

Tensor::Tensor(Shape shape, float fill) : shape_(std::move(shape)), data_(harvit::numel(shape_), fill) {}

void Tensor::reshape(Shape s) {
  if (harvit::numel(s) != numel())
    fail("cannot reshape tensor of shape " + shape_str(shape_) + " to " + shape_str(s));
  shape_ = std::move(s);
}

void Tensor::resize(Shape s) {
  data_.resize(harvit::numel(s));
  shape_ = std::move(s);
}

void Tensor::zero() { std::fill(data_.begin(), data_.end(), 0.0f); }

}  // namespace harvit
