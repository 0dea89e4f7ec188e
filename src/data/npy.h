// NumPy .npy reader: little-endian f4/f8/i4/i8/u1 (and |i1/<u4 style variants rejected clearly),
// C order, format versions 1-3. Everything else is refused with a message naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace harvit::data {

struct NpyArray {
  std::string path;
  std::string descr;           // e.g. "<f8"
  std::vector<int64_t> shape;
  std::vector<double> values;  // converted (exact for all supported types up to 2^53)
  int64_t numel() const;
};

NpyArray npy_load(const std::string& path);
// Parses from memory (for the fuzzer and tests); `path` is used in messages only.
NpyArray npy_parse(const std::string& bytes, const std::string& path);

}  // namespace harvit::data
