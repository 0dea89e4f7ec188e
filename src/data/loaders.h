// Readers for real HAR data: raw streams (WISDM v1.1 / 2019, UCI-HAPT, generic CSV) that are cut
// into windows here, and pre-windowed sets (WISDM v1.1 AdaTime .npy, UCI-HAR Inertial Signals).
// Every malformed input raises an error naming file, line and problem; dirty WISDM records are
// skipped and counted instead, as the WISDM files are known to hold them.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"

namespace harvit::data {

// One continuous recording of one subject, in time order.
struct RawStream {
  std::string source;
  int32_t subject = 0;
  std::vector<int64_t> time_ns;  // empty = evenly sampled at RawData::rate_hz
  std::vector<float> values;     // (n, M)
  std::vector<int32_t> label;    // (n) class index, -1 = not used
  int64_t size() const { return static_cast<int64_t>(label.size()); }
};

struct RawData {
  std::string name;
  std::vector<std::string> class_names, axis_names;
  double rate_hz = 20.0;
  std::vector<RawStream> streams;
  ParseReport report;
};

// WISDM raw `user,activity,timestamp,x,y,z;` text (v1.1 activity names or 2019 letters A..S).
// `files` are read in order; all must be of the same release.
RawData parse_wisdm_files(const std::vector<std::string>& files);
// Parses one file's text (used by the loader, tests and the fuzzer). Appends to `out`.
void parse_wisdm_text(const std::string& text, const std::string& source, RawData& out);

// UCI-HAPT RawData folder (acc_expXX_userYY.txt, gyro_..., labels.txt): 6 axes at 50 Hz.
// Basic activities by default; transitions=true adds the 6 postural transitions as classes.
RawData load_hapt(const std::string& dir, bool transitions = false);
// labels.txt rows (exp, user, activity, start, end); exposed for the fuzzer.
struct HaptSegment { int exp, user, activity; int64_t start, end; int line; };
std::vector<HaptSegment> parse_hapt_labels(const std::string& text, const std::string& source);

struct CsvOptions {
  std::string subject_col, label_col, time_col;  // column names; only the axes are required
  std::vector<std::string> axis_cols;
  double time_scale_ns = 1e6;  // nanoseconds per time unit (default: milliseconds)
  double rate_hz = 50.0;       // used for the gap threshold when there is no time column
  char delimiter = ',';
};
RawData load_csv(const std::string& path, const CsvOptions& opt);
void parse_csv_text(const std::string& text, const std::string& source, const CsvOptions& opt, RawData& out);

struct WindowOptions {
  int64_t length = 128, stride = 64;
  double max_gap_s = 0;  // a time gap above this starts a new run; 0 = 5 sample periods
};
// Cuts runs (same stream, same label, no gap) into sliding windows. Split is left as train.
Dataset make_windows(const RawData& raw, const WindowOptions& opt);
// One line on what make_windows' time cuts cost: cuts by kind, and the windows against those of a
// timestamp-blind cut (the seed's preprocessing). Empty for data without timestamps.
std::string time_cut_summary(const Dataset& ds);

// Pre-windowed sets with their own train/test split (`given`).
Dataset load_wisdm_npy(const std::string& dir);  // wisdm_{X,y,user,split}.npy
Dataset load_uci_har(const std::string& dir);    // folder holding train/ and test/ (or its parent)

// Files of a folder whose name matches a glob-like prefix/suffix, sorted; a file is returned as is.
std::vector<std::string> list_inputs(const std::string& path, const std::string& prefix,
                                     const std::string& suffix);
std::string read_text_file(const std::string& path);

// Field helpers of the readers above, shared with the streaming readers (`harvit stream`).
std::string at(const std::string& source, int64_t line);  // "source:line"
std::string_view trim(std::string_view s);                // blanks, tabs and '\r' at both ends
enum class Num { Ok, Empty, Bad, NonFinite };
Num parse_double(std::string_view s, double& v);  // trimmed; a leading '+' allowed
Num parse_int(std::string_view s, int64_t& v);
// Splits s on `sep` into at most `max` fields (returns the number found, which may exceed max).
size_t split_fields(std::string_view s, char sep, std::string_view* out, size_t max);
// Splits on runs of spaces/tabs into at most `max` tokens (returns the number found).
size_t split_whitespace(std::string_view s, std::string_view* out, size_t max);

}  // namespace harvit::data
