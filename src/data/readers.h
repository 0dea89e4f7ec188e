// The readers of `harvit prepare` and `harvit predict` by name, with the auto-detection of a
// recording's format, for the CLI and other drivers (cross-validation, benchmarks, tests).
#pragma once
#include <functional>
#include <string>

#include "data/dataset.h"
#include "data/loaders.h"

namespace harvit::data {

// The CSV reader's settings as the command line gives them (--csv-*), checked by options().
struct CsvArgs {
  std::string subject, label, time, axes;  // column names; axes comma-separated
  std::string time_unit = "ms";            // s | ms | us | ns
  double rate_hz = 50;
  std::string delimiter = ",";             // one character
  CsvOptions options() const;
};

// Raw recordings: format "wisdm" (a .txt file or a folder of them), "hapt" (a RawData folder;
// transitions = the 6 postural transitions as classes) or "csv"; "auto" is resolved first with
// detect_recording_format.
RawData read_recordings(const std::string& format, const std::string& path, const CsvArgs& csv, bool transitions);
// hapt for a folder holding labels.txt, RawData or "HAPT Dataset"; csv for a name ending in
// .csv; wisdm otherwise.
std::string detect_recording_format(const std::string& path);

struct ReadOptions {
  bool transitions = false;  // hapt
  CsvArgs csv;               // csv (the label column is required)
  WindowOptions windows;     // for the raw kinds
};
// The windows of a dataset of kind wisdm-npy or uci-har (pre-windowed, with their given split)
// or wisdm, hapt, csv (recordings cut into windows). For the raw kinds `note` receives the parse
// report and, after cutting, the time-cut summary. Split and normalisation are left to the caller.
Dataset read_dataset(const std::string& kind, const std::string& path, const ReadOptions& opt,
                     const std::function<void(const std::string&)>& note = {});

}  // namespace harvit::data
