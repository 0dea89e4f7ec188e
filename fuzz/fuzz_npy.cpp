// libFuzzer target: .npy parser.
#include <stdexcept>
#include <string>

#include "data/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    harvit::data::npy_parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.npy");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
