// Helpers for fuzz targets whose loader reads a path: one scratch folder per process (under
// $TMPDIR, else /tmp; removed at exit), where each input is written before the loader runs.
// With HARVIT_FUZZ_VERBOSE=1 a target says whether each input was accepted or why it was refused
// (to check that valid seeds reach the loader: `HARVIT_FUZZ_VERBOSE=1 fuzz_dataset corpus/dataset/*`).
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace harvit::fuzz {

inline const std::filesystem::path& scratch_dir() {
  struct Dir {
    std::filesystem::path p;
    Dir() {
      const char* t = std::getenv("TMPDIR");
      std::string tmpl = std::string(t && *t ? t : "/tmp") + "/harvit-fuzz-XXXXXX";
      if (!::mkdtemp(tmpl.data())) throw std::logic_error("fuzz: cannot create a scratch folder in " + tmpl);
      p = tmpl;
    }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(p, ec);
    }
  };
  static Dir d;
  return d.p;
}

// Writes bytes to `rel` inside the scratch folder (creating its parent folders); returns the path.
inline std::string write_scratch(const std::string& rel, const char* data, size_t size) {
  const std::filesystem::path p = scratch_dir() / rel;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(data, static_cast<std::streamsize>(size));
  if (!out) throw std::logic_error("fuzz: cannot write " + p.string());
  return p.string();
}

inline std::string write_scratch(const std::string& rel, const uint8_t* data, size_t size) {
  return write_scratch(rel, reinterpret_cast<const char*>(data), size);
}

inline void note(const std::string& what) {
  static const bool verbose = [] {
    const char* v = std::getenv("HARVIT_FUZZ_VERBOSE");
    return v && *v && *v != '0';
  }();
  if (verbose) std::fprintf(stderr, "%s\n", what.c_str());
}

}  // namespace harvit::fuzz
