// libFuzzer target: the dataset file `harvit prepare` writes (read by train / eval). A file the
// loader accepts must be safe to summarise (labels and split codes index tables there).
#include <stdexcept>
#include <string>

#include "data/dataset.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = harvit::fuzz::write_scratch("fuzz.bin", data, size);
  try {
    const harvit::data::Dataset ds = harvit::data::load_dataset(path);
    harvit::data::dataset_summary(ds);
    harvit::fuzz::note("dataset: accepted, " + std::to_string(ds.size()) + " windows");
  } catch (const std::runtime_error& e) {
    harvit::fuzz::note(std::string("dataset: refused: ") + e.what());
  }
  return 0;
}
