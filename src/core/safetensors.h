// safetensors files (https://huggingface.co/docs/safetensors): 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then
// the raw little-endian tensor bytes. Readable by the Python `safetensors` package and by
// tools/torch_to_safetensors.py.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace harvit {

struct StEntry {
  std::string dtype;  // "F32", "F64", "I32", "I64", "U8"
  Shape shape;
  int64_t begin = 0, end = 0;  // byte range inside the data section
};

class SafetensorsFile {
 public:
  // Reads and validates the whole file; every problem raises an error naming the file.
  static SafetensorsFile load(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Tensor names in file order (the header's key order is not meaningful; sorted by offset).
  std::vector<std::string> names() const;
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  const StEntry& entry(const std::string& name) const;
  // Values converted to float (F32 copied, F64/I32/I64/U8 converted).
  std::vector<float> floats(const std::string& name) const;
  std::vector<int32_t> ints(const std::string& name) const;

 private:
  std::string path_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, StEntry> entries_;
  std::vector<uint8_t> data_;
};

// Accumulates tensors, then writes them atomically (temp file in the same folder + rename).
class SafetensorsWriter {
 public:
  void add_f32(const std::string& name, const Shape& shape, const float* data);
  void add_i32(const std::string& name, const Shape& shape, const int32_t* data);
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void write(const std::string& path) const;

 private:
  void add_raw(const std::string& name, const std::string& dtype, const Shape& shape,
               const void* data, size_t bytes);
  struct Item {
    std::string name, dtype;
    Shape shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
};

// Writes `bytes` to `path` atomically: a temp file beside it, flushed and fsync'ed, then renamed.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace harvit
