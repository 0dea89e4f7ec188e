// libFuzzer target: the WISDM raw parser must reject or accept any bytes without crashing.
#include <stdexcept>
#include <string>

#include "data/loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  harvit::data::RawData raw;
  try {
    harvit::data::parse_wisdm_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.txt", raw);
    if (raw.report.records > 0) harvit::data::make_windows(raw, {8, 4, 0});
  } catch (const std::runtime_error&) {
  }
  return 0;
}
