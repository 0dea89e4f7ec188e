// libFuzzer target: generic CSV parser (columns t,user,act,ax,ay as the corpus uses them).
#include <stdexcept>
#include <string>

#include "data/loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  harvit::data::CsvOptions o;
  o.subject_col = "user";
  o.label_col = "act";
  o.time_col = "t";
  o.axis_cols = {"ax", "ay"};
  harvit::data::RawData raw;
  try {
    harvit::data::parse_csv_text(std::string(reinterpret_cast<const char*>(data), size), "fuzz.csv", o, raw);
    harvit::data::make_windows(raw, {4, 2, 0});
  } catch (const std::runtime_error&) {
  }
  return 0;
}
