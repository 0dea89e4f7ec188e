#include "core/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace harvit {

using json = nlohmann::json;

namespace {
int64_t dtype_size(const std::string& dt) {
  if (dt == "F32" || dt == "I32") return 4;
  if (dt == "F64" || dt == "I64") return 8;
  if (dt == "U8") return 1;
  return 0;
}
constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB
}  // namespace

SafetensorsFile SafetensorsFile::load(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  auto bad = [&](const std::string& why) -> void { fail(path + ": not a valid safetensors file: " + why); };
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open (" + std::strerror(errno) + ")");
  in.seekg(0, std::ios::end);
  const int64_t size = in.tellg();
  in.seekg(0);
  if (size < 8) bad("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint8_t lenbuf[8];
  in.read(reinterpret_cast<char*>(lenbuf), 8);
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | lenbuf[i];
  if (hlen > kMaxHeader) bad("header length " + std::to_string(hlen) + " is over the 100 MB limit");
  if (static_cast<int64_t>(hlen) > size - 8)
    bad("header length " + std::to_string(hlen) + " runs past the end of the file (" +
        std::to_string(size) + " bytes): truncated?");
  std::string header(hlen, '\0');
  in.read(header.data(), static_cast<std::streamsize>(hlen));
  json j;
  try {
    j = json::parse(header);
  } catch (const json::parse_error& e) {
    bad(std::string("header is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) bad("header is not a JSON object");
  const int64_t data_size = size - 8 - static_cast<int64_t>(hlen);
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) bad("__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) bad("metadata value for \"" + m.key() + "\" is not a string");
        f.metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    const json& e = *it;
    const std::string where = "tensor \"" + it.key() + "\": ";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      bad(where + "needs dtype, shape and data_offsets");
    StEntry en;
    if (!e["dtype"].is_string()) bad(where + "dtype is not a string");
    en.dtype = e["dtype"].get<std::string>();
    const int64_t es = dtype_size(en.dtype);
    if (!es) bad(where + "unsupported dtype " + en.dtype + " (harvit reads F32, F64, I32, I64, U8)");
    if (!e["shape"].is_array()) bad(where + "shape is not an array");
    int64_t count = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) bad(where + "shape has a non-integer or negative entry");
      en.shape.push_back(d.get<int64_t>());
      if (en.shape.back() > 0 && count > (int64_t{1} << 40) / en.shape.back()) bad(where + "shape is absurdly large");
      count *= en.shape.back();
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_integer() || !off[1].is_number_integer())
      bad(where + "data_offsets must be two integers");
    en.begin = off[0].get<int64_t>();
    en.end = off[1].get<int64_t>();
    if (en.begin < 0 || en.end < en.begin) bad(where + "data_offsets are reversed or negative");
    if (en.end - en.begin != count * es)
      bad(where + "shape " + shape_str(en.shape) + " of " + en.dtype + " needs " +
          std::to_string(count * es) + " bytes but data_offsets span " + std::to_string(en.end - en.begin));
    if (en.end > data_size)
      bad(where + "data ends at byte " + std::to_string(en.end) + " but the data section has only " +
          std::to_string(data_size) + " bytes: file truncated?");
    f.entries_[it.key()] = en;
  }
  // Tensors may not share bytes (the format's rule; it also keeps the values a header can claim
  // within the file's size).
  std::vector<std::pair<const std::string*, const StEntry*>> by_offset;
  for (const auto& [name, en] : f.entries_)
    if (en.end > en.begin) by_offset.push_back({&name, &en});
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    if (by_offset[i].second->begin < by_offset[i - 1].second->end)
      bad("tensors \"" + *by_offset[i - 1].first + "\" and \"" + *by_offset[i].first + "\" overlap in the data section");
  f.data_.resize(data_size);
  in.read(reinterpret_cast<char*>(f.data_.data()), data_size);
  if (in.gcount() != data_size) bad("short read of the data section");
  return f;
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::pair<int64_t, std::string>> v;
  for (const auto& [k, e] : entries_) v.push_back({e.begin, k});
  std::sort(v.begin(), v.end());
  std::vector<std::string> out;
  for (auto& p : v) out.push_back(p.second);
  return out;
}

const StEntry& SafetensorsFile::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(path_ + ": no tensor named \"" + name + "\"");
  return it->second;
}

template <typename Out>
static std::vector<Out> convert(const StEntry& e, const uint8_t* p) {
  const int64_t n = numel(e.shape);
  std::vector<Out> out(n);
  auto rd = [&](auto tag) {
    using T = decltype(tag);
    for (int64_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, p + i * sizeof(T), sizeof(T));
      out[i] = static_cast<Out>(v);
    }
  };
  if (e.dtype == "F32") rd(float{});
  else if (e.dtype == "F64") rd(double{});
  else if (e.dtype == "I32") rd(int32_t{});
  else if (e.dtype == "I64") rd(int64_t{});
  else rd(uint8_t{});
  return out;
}

std::vector<float> SafetensorsFile::floats(const std::string& name) const {
  const StEntry& e = entry(name);
  return convert<float>(e, data_.data() + e.begin);
}

std::vector<int32_t> SafetensorsFile::ints(const std::string& name) const {
  const StEntry& e = entry(name);
  if (e.dtype[0] == 'F') fail(path_ + ": tensor \"" + name + "\" is " + e.dtype + ", expected integers");
  return convert<int32_t>(e, data_.data() + e.begin);
}

void SafetensorsWriter::add_raw(const std::string& name, const std::string& dtype, const Shape& shape,
                                const void* data, size_t bytes) {
  for (const auto& it : items_)
    if (it.name == name) fail("safetensors writer: duplicate tensor name " + name);
  Item it{name, dtype, shape, std::vector<uint8_t>(bytes)};
  if (bytes) std::memcpy(it.bytes.data(), data, bytes);
  items_.push_back(std::move(it));
}

void SafetensorsWriter::add_f32(const std::string& name, const Shape& shape, const float* data) {
  add_raw(name, "F32", shape, data, numel(shape) * sizeof(float));
}

void SafetensorsWriter::add_i32(const std::string& name, const Shape& shape, const int32_t* data) {
  add_raw(name, "I32", shape, data, numel(shape) * sizeof(int32_t));
}

void SafetensorsWriter::write(const std::string& path) const {
  json h = json::object();
  int64_t off = 0;
  for (const auto& it : items_) {
    h[it.name] = {{"dtype", it.dtype}, {"shape", it.shape}, {"data_offsets", {off, off + (int64_t)it.bytes.size()}}};
    off += it.bytes.size();
  }
  if (!metadata_.empty()) h["__metadata__"] = metadata_;
  std::string header = h.dump();
  while ((header.size() + 8) % 8) header.push_back(' ');  // align the data section to 8 bytes
  std::string out;
  out.reserve(8 + header.size() + off);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += header;
  for (const auto& it : items_) out.append(reinterpret_cast<const char*>(it.bytes.data()), it.bytes.size());
  write_file_atomic(path, out);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;  // a missing folder is created; failing that, open() below names the problem
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail(path + ": cannot create temporary file " + tmp + " (" + std::strerror(errno) + ")");
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(path + ": write failed (" + err + ")");
    }
    done += static_cast<size_t>(w);
  }
  const bool synced = ::fsync(fd) == 0;
  const int sync_errno = errno;
  const bool closed = ::close(fd) == 0;
  if (!synced || !closed) {
    const std::string err = std::strerror(synced ? errno : sync_errno);
    ::unlink(tmp.c_str());
    fail(path + ": flushing failed (" + err + ")");
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail(path + ": rename from " + tmp + " failed (" + err + ")");
  }
  // The rename itself reaches the disk with the folder's entry: after a power cut the file is the
  // new one (or, where the folder cannot be synced, as the filesystem left it).
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace harvit
