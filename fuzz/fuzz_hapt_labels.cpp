// libFuzzer target: HAPT labels.txt parser.
#include <stdexcept>
#include <string>

#include "data/loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    harvit::data::parse_hapt_labels(std::string(reinterpret_cast<const char*>(data), size), "labels.txt");
  } catch (const std::runtime_error&) {
  }
  return 0;
}
