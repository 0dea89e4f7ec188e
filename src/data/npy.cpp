#include "data/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "core/tensor.h"

namespace harvit::data {

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

namespace {

// Finds 'key': <value> in the header dict and returns the raw value text.
std::string dict_value(const std::string& h, const std::string& key, const std::string& path) {
  const std::string k = "'" + key + "'";
  size_t p = h.find(k);
  if (p == std::string::npos) fail(path + ": .npy header has no " + k + " entry");
  p = h.find(':', p + k.size());
  if (p == std::string::npos) fail(path + ": .npy header entry " + k + " has no value");
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  if (p >= h.size()) fail(path + ": .npy header entry " + k + " is empty");
  size_t e = p;
  if (h[p] == '\'') {
    e = h.find('\'', p + 1);
    if (e == std::string::npos) fail(path + ": unterminated string in .npy header");
    return h.substr(p + 1, e - p - 1);
  }
  if (h[p] == '(') {
    e = h.find(')', p);
    if (e == std::string::npos) fail(path + ": unterminated shape tuple in .npy header");
    return h.substr(p, e - p + 1);
  }
  while (e < h.size() && h[e] != ',' && h[e] != '}') ++e;
  std::string v = h.substr(p, e - p);
  while (!v.empty() && v.back() == ' ') v.pop_back();
  return v;
}

}  // namespace

NpyArray npy_parse(const std::string& bytes, const std::string& path) {
  NpyArray a;
  a.path = path;
  if (bytes.size() < 10 || std::memcmp(bytes.data(), "\x93NUMPY", 6) != 0)
    fail(path + ": not a .npy file (missing the \\x93NUMPY magic)");
  const int major = static_cast<uint8_t>(bytes[6]);
  size_t hlen, hstart;
  if (major == 1) {
    hlen = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) fail(path + ": truncated .npy header");
    hlen = 0;
    for (int i = 3; i >= 0; --i) hlen = (hlen << 8) | static_cast<uint8_t>(bytes[8 + i]);
    hstart = 12;
  } else {
    fail(path + ": unsupported .npy format version " + std::to_string(major));
  }
  if (hstart + hlen > bytes.size())
    fail(path + ": .npy header length " + std::to_string(hlen) + " runs past the end of the file");
  const std::string h = bytes.substr(hstart, hlen);
  a.descr = dict_value(h, "descr", path);
  if (dict_value(h, "fortran_order", path) != "False")
    fail(path + ": Fortran-order arrays are not supported (save with np.ascontiguousarray)");
  const std::string shape = dict_value(h, "shape", path);
  if (shape.empty() || shape.front() != '(') fail(path + ": .npy shape is not a tuple: " + shape);
  std::stringstream ss(shape.substr(1, shape.size() - 2));
  std::string tok;
  int64_t count = 1;
  while (std::getline(ss, tok, ',')) {
    size_t b = tok.find_first_not_of(' ');
    if (b == std::string::npos) continue;
    tok = tok.substr(b);
    char* end = nullptr;
    errno = 0;
    const long long d = std::strtoll(tok.c_str(), &end, 10);
    if (end == tok.c_str() || errno || d < 0) fail(path + ": bad dimension '" + tok + "' in .npy shape");
    if (d > 0 && count > (int64_t{1} << 40) / d) fail(path + ": .npy shape is absurdly large");
    a.shape.push_back(d);
    count *= d;
  }
  int esz = 0;
  const std::string& dsc = a.descr;
  if (dsc == "<f4" || dsc == "<i4") esz = 4;
  else if (dsc == "<f8" || dsc == "<i8") esz = 8;
  else if (dsc == "|u1" || dsc == "<u1") esz = 1;
  else
    fail(path + ": unsupported .npy dtype '" + dsc +
         "' (harvit reads little-endian f4, f8, i4, i8 and u1)");
  const size_t data_start = hstart + hlen;
  const size_t need = static_cast<size_t>(count) * esz;
  if (bytes.size() - data_start < need)
    fail(path + ": .npy data is truncated: shape " + shape + " needs " + std::to_string(need) +
         " bytes, file has " + std::to_string(bytes.size() - data_start));
  a.values.resize(count);
  const char* p = bytes.data() + data_start;
  for (int64_t i = 0; i < count; ++i, p += esz) {
    if (dsc == "<f4") { float v; std::memcpy(&v, p, 4); a.values[i] = v; }
    else if (dsc == "<f8") { double v; std::memcpy(&v, p, 8); a.values[i] = v; }
    else if (dsc == "<i4") { int32_t v; std::memcpy(&v, p, 4); a.values[i] = v; }
    else if (dsc == "<i8") { int64_t v; std::memcpy(&v, p, 8); a.values[i] = static_cast<double>(v); }
    else a.values[i] = static_cast<uint8_t>(*p);
  }
  return a;
}

NpyArray npy_load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open (" + std::strerror(errno) + ")");
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  return npy_parse(bytes, path);
}

}  // namespace harvit::data
