// Contiguous row-major float tensors. Shapes are outermost-first, as PyTorch prints them.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace harvit {

using Shape = std::vector<int64_t>;

int64_t numel(const Shape& s);
// "[2, 3, 4]" - the same order and look as torch.Size.
std::string shape_str(const Shape& s);

// Throws std::runtime_error with a formatted message; used for every user-facing error.
[[noreturn]] void fail(const std::string& msg);

#define HARVIT_CHECK(cond, msg)                                                             \
  do {                                                                                      \
    if (!(cond)) ::harvit::fail(std::string(__FILE__) + ":" + std::to_string(__LINE__) +   \
                                ": check failed: " #cond ": " + (msg));                     \
  } while (0)

// An owning, contiguous float tensor. Deliberately small: layers work on raw float buffers
// (llm.c style) and use Tensor only to own storage and carry a shape.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(Shape shape, float fill = 0.0f);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int64_t numel() const { return static_cast<int64_t>(data_.size()); }
  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  float& operator[](int64_t i) { return data_[i]; }
  float operator[](int64_t i) const { return data_[i]; }
  // Reinterpret with a new shape of the same element count.
  void reshape(Shape s);
  // Resize (contents unspecified after growth; existing capacity is reused).
  void resize(Shape s);
  void zero();

 private:
  Shape shape_;
  std::vector<float> data_;
};

}  // namespace harvit
