// libFuzzer target: the UCI-HAR reader (load_uci_har), which takes a folder of text files. The
// input is split on '|' into parts that become the folder's 22 files, in this order:
//   train/y_train.txt, train/subject_train.txt, test/y_test.txt, test/subject_test.txt, then the
//   9 train and the 9 test "Inertial Signals" files;
// file i gets part min(i, parts - 1), so a short input gives every signal file the same text.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "data/loaders.h"
#include "fuzz_util.h"

namespace {
std::vector<std::string> file_names() {
  std::vector<std::string> f = {"train/y_train.txt", "train/subject_train.txt", "test/y_test.txt",
                                "test/subject_test.txt"};
  const char* sig[9] = {"body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y",
                        "body_gyro_z", "total_acc_x", "total_acc_y", "total_acc_z"};
  for (const char* part : {"train", "test"})
    for (const char* s : sig) f.push_back(std::string(part) + "/Inertial Signals/" + s + "_" + part + ".txt");
  return f;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string> files = file_names();
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  for (size_t b = 0;;) {
    const size_t e = in.find('|', b);
    parts.push_back(in.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
    if (e == std::string_view::npos) break;
    b = e + 1;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string_view p = parts[std::min(i, parts.size() - 1)];
    harvit::fuzz::write_scratch("har/" + files[i], p.data(), p.size());
  }
  const std::string dir = (harvit::fuzz::scratch_dir() / "har").string();
  try {
    const harvit::data::Dataset ds = harvit::data::load_uci_har(dir);
    ds.validate();
    harvit::data::dataset_summary(ds);
    harvit::fuzz::note("uci-har: accepted, " + std::to_string(ds.size()) + " windows");
  } catch (const std::runtime_error& e) {
    harvit::fuzz::note(std::string("uci-har: refused: ") + e.what());
  }
  return 0;
}
