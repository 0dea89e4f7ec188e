#include "data/readers.h"

#include <filesystem>
#include <sstream>

#include "core/tensor.h"

namespace harvit::data {

CsvOptions CsvArgs::options() const {
  CsvOptions co;
  co.subject_col = subject;
  co.label_col = label;
  co.time_col = time;
  std::stringstream ss(axes);
  for (std::string tok; std::getline(ss, tok, ',');)
    if (!tok.empty()) co.axis_cols.push_back(tok);
  co.rate_hz = rate_hz;
  const std::string& u = time_unit;
  co.time_scale_ns = u == "s" ? 1e9 : u == "ms" ? 1e6 : u == "us" ? 1e3 : u == "ns" ? 1.0 : -1;
  if (co.time_scale_ns < 0) fail("--csv-time-unit must be s, ms, us or ns");
  if (delimiter.size() != 1) fail("--csv-delimiter must be one character");
  co.delimiter = delimiter[0];
  return co;
}

std::string detect_recording_format(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path) &&
      (fs::exists(path + "/labels.txt") || fs::exists(path + "/RawData") || fs::exists(path + "/HAPT Dataset")))
    return "hapt";
  if (path.ends_with(".csv")) return "csv";
  return "wisdm";
}

RawData read_recordings(const std::string& format, const std::string& path, const CsvArgs& csv, bool transitions) {
  if (format == "wisdm") return parse_wisdm_files(list_inputs(path, "", ".txt"));
  if (format == "hapt") return load_hapt(path, transitions);
  if (format == "csv") return load_csv(path, csv.options());
  fail("--format must be auto, wisdm, hapt or csv");
}

Dataset read_dataset(const std::string& kind, const std::string& path, const ReadOptions& opt,
                     const std::function<void(const std::string&)>& note) {
  if (kind == "wisdm-npy") return load_wisdm_npy(path);
  if (kind == "uci-har") return load_uci_har(path);
  if (kind != "wisdm" && kind != "hapt" && kind != "csv")
    fail("unknown --dataset '" + kind + "' (wisdm, wisdm-npy, uci-har, hapt, csv)");
  if (kind == "csv" && opt.csv.label.empty()) fail("prepare --dataset csv needs --csv-label");
  const RawData raw = read_recordings(kind, path, opt.csv, opt.transitions);
  if (note) note(raw.report.summary());
  Dataset ds = make_windows(raw, opt.windows);
  if (note) note(time_cut_summary(ds));
  return ds;
}

}  // namespace harvit::data
