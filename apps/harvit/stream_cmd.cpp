// `harvit stream`: a recording (a file or standard input) through the streaming recogniser
// (deploy/stream.h), read line by line and never loaded whole, one output line per decision,
// written and flushed as it is made - `tail -f log.csv | harvit stream --input -` labels a live
// log. The numbers are printed with fixed %.4f, so that two runs (or the C API example,
// examples/stream_file.c) can be compared byte for byte.
//
// Inputs: CSV (a header row naming the columns, or none), WISDM raw `user,activity,timestamp,x,y,z;`
// text (a change of user starts a new recording: the recogniser is reset) and a UCI-HAPT
// acc_expXX_userYY.txt file with its gyro_expXX_userYY.txt beside it (6 axes).
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "data/loaders.h"
#include "deploy/stream.h"

namespace harvit::cli {

namespace {

using data::at;
using data::Num;

struct StreamArgs {
  std::string model, input, input_format = "auto", format = "csv";
  RecognizerArgs rec;
  double max_gap_s = 0;
  std::string csv_axes, csv_time, csv_time_unit = "ms", csv_delimiter = ",";
};

std::string join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// Lines of a file or of standard input ("-"), one at a time, numbered from 1, trimmed.
class Lines {
 public:
  explicit Lines(const std::string& path) : name_(path == "-" ? "<stdin>" : path) {
    if (path != "-") {
      if (std::filesystem::is_directory(path)) fail(path + ": is a folder, expected a file");
      file_.open(path, std::ios::binary);
      if (!file_) fail(path + ": cannot open (" + std::strerror(errno) + ")");
    }
    in_ = path == "-" ? &std::cin : &file_;
  }
  // The next line (trimmed of blanks and '\r'); false at the end.
  bool get(std::string_view& line) {
    if (!std::getline(*in_, buf_)) {
      if (in_->bad()) fail(name_ + ": read error after line " + std::to_string(line_));
      return false;
    }
    ++line_;
    line = data::trim(buf_);
    return true;
  }
  int64_t line() const { return line_; }
  const std::string& name() const { return name_; }
  std::string where() const { return at(name_, line_); }

 private:
  std::string name_, buf_;
  std::ifstream file_;
  std::istream* in_;
  int64_t line_ = 0;
};

// One sample after another: next() fills `row` (axes floats) and `time_ns` (-1 without times).
class Reader {
 public:
  virtual ~Reader() = default;
  virtual bool next(float* row, int64_t& time_ns) = 0;
  // True once after the sample that next() just returned starts a new recording (not the first).
  bool take_new_recording() {
    const bool r = new_recording_;
    new_recording_ = false;
    return r;
  }
  virtual std::string summary() const { return ""; }

 protected:
  bool new_recording_ = false;
};

double time_scale(const std::string& unit) {
  if (unit == "s") return 1e9;
  if (unit == "ms") return 1e6;
  if (unit == "us") return 1e3;
  if (unit == "ns") return 1.0;
  fail("--csv-time-unit must be s, ms, us or ns, not '" + unit + "'");
}

// CSV: the axis columns are --csv-axes, else the model's axis names where the header has them
// all, else the first `axes` numeric columns (other than the time column); without a header row
// (a first line of numbers only) the first `axes` columns.
class CsvReader : public Reader {
 public:
  CsvReader(const std::string& path, const StreamArgs& a, const std::vector<std::string>& model_axes)
      : lines_(path), M_(static_cast<int64_t>(model_axes.size())) {
    if (a.csv_delimiter.size() != 1) fail("--csv-delimiter must be one character");
    sep_ = a.csv_delimiter[0];
    scale_ = time_scale(a.csv_time_unit);
    std::string_view ln;
    while (lines_.get(ln) && ln.empty()) {
    }
    if (ln.empty()) fail(lines_.name() + ": no rows");
    std::vector<std::string_view> f(257);
    const size_t n = data::split_fields(ln, sep_, f.data(), f.size());
    if (n > 256) fail(lines_.where() + ": more than 256 columns");
    bool numeric = true;
    for (size_t i = 0; i < n; ++i) {
      double v;
      numeric &= data::parse_double(f[i], v) == Num::Ok;
    }
    fields_.resize(n + 1);
    ncols_ = static_cast<int64_t>(n);
    if (numeric) {  // no header: the first row is data
      if (!a.csv_axes.empty() || !a.csv_time.empty())
        fail(lines_.where() + ": the first row holds numbers only (no header row), so --csv-axes/--csv-time cannot name columns");
      if (ncols_ < M_)
        fail(lines_.where() + ": " + std::to_string(ncols_) + " columns, the model reads " + std::to_string(M_) +
             " axes (" + join(model_axes) + ")");
      for (int64_t m = 0; m < M_; ++m) axis_col_.push_back(static_cast<int>(m));
      for (size_t i = 0; i < n; ++i) header_.push_back("column " + std::to_string(i + 1));
      pending_ = std::string(ln);
      pending_line_ = lines_.line();
      return;
    }
    header_line_ = lines_.line();
    for (size_t i = 0; i < n; ++i) header_.emplace_back(data::trim(f[i]));
    auto col = [&](const std::string& name) -> int {
      for (size_t i = 0; i < header_.size(); ++i)
        if (header_[i] == name) return static_cast<int>(i);
      return -1;
    };
    auto need = [&](const std::string& name) {
      const int c = col(name);
      if (c < 0)
        fail(at(lines_.name(), header_line_) + ": no column named '" + name + "' in the header (columns: " +
             join(header_, ", ") + ")");
      return c;
    };
    if (!a.csv_time.empty()) time_col_ = need(a.csv_time);
    if (!a.csv_axes.empty()) {
      std::vector<std::string> names;
      std::string cur;
      for (char ch : a.csv_axes + ",") {
        if (ch == ',') {
          if (!cur.empty()) names.push_back(cur);
          cur.clear();
        } else {
          cur += ch;
        }
      }
      if (static_cast<int64_t>(names.size()) != M_)
        fail("--csv-axes names " + std::to_string(names.size()) + " columns, the model reads " + std::to_string(M_) +
             " axes (" + join(model_axes) + ")");
      for (const auto& nm : names) axis_col_.push_back(need(nm));
      return;
    }
    bool all = true;
    for (const auto& nm : model_axes) all &= col(nm) >= 0;
    if (all) {
      for (const auto& nm : model_axes) axis_col_.push_back(col(nm));
      return;
    }
    // No header match: the first M numeric columns of the first data row.
    while (lines_.get(ln) && ln.empty()) {
    }
    if (ln.empty()) fail(lines_.name() + ": no data rows after the header");
    const size_t k = split(ln);
    for (size_t i = 0; i < k && static_cast<int64_t>(axis_col_.size()) < M_; ++i) {
      double v;
      if (static_cast<int>(i) != time_col_ && data::parse_double(fields_[i], v) == Num::Ok)
        axis_col_.push_back(static_cast<int>(i));
    }
    if (static_cast<int64_t>(axis_col_.size()) < M_)
      fail(lines_.where() + ": the header has not all of the model's axes (" + join(model_axes) + ") and the row has only " +
           std::to_string(axis_col_.size()) + " numeric columns; name them with --csv-axes");
    std::vector<std::string> chosen;
    for (int c : axis_col_) chosen.push_back(header_[c]);
    std::fprintf(stderr, "stream: %s: the header lacks some of the model's axes (%s); reading columns %s\n",
                 lines_.name().c_str(), join(model_axes).c_str(), join(chosen).c_str());
    pending_ = std::string(ln);
    pending_line_ = lines_.line();
  }

  bool next(float* row, int64_t& time_ns) override {
    std::string_view ln;
    int64_t line;
    if (!pending_.empty()) {
      held_ = std::move(pending_);
      pending_.clear();
      ln = held_;
      line = pending_line_;
    } else {
      do {
        if (!lines_.get(ln)) return false;
      } while (ln.empty());
      line = lines_.line();
    }
    const size_t n = split(ln);
    if (static_cast<int64_t>(n) != ncols_)
      fail(at(lines_.name(), line) + ": " + std::to_string(n) + " columns, " +
           (header_line_ ? "the header has " : "the first row has ") + std::to_string(ncols_));
    for (int64_t m = 0; m < M_; ++m) {
      const int c = axis_col_[m];
      double v;
      const Num r = data::parse_double(fields_[c], v);
      if (r == Num::Empty) fail(at(lines_.name(), line) + ": missing value in column '" + header_[c] + "'");
      if (r == Num::Bad)
        fail(at(lines_.name(), line) + ": '" + std::string(data::trim(fields_[c])) + "' in column '" + header_[c] +
             "' is not a number");
      if (r == Num::NonFinite) fail(at(lines_.name(), line) + ": non-finite value in column '" + header_[c] + "'");
      row[m] = static_cast<float>(v);
    }
    time_ns = -1;
    if (time_col_ >= 0) {
      double t;
      const std::string_view tf = data::trim(fields_[time_col_]);
      if (data::parse_double(tf, t) != Num::Ok)
        fail(at(lines_.name(), line) + ": time '" + std::string(tf) + "' is not a finite number");
      if (std::fabs(t * scale_) > 4.6e18)  // past +-2^62 ns (146 years): not a sensor clock
        fail(at(lines_.name(), line) + ": time '" + std::string(tf) + "' is out of range (over 146 years in ns)");
      time_ns = static_cast<int64_t>(std::llround(t * scale_));
    }
    return true;
  }

 private:
  size_t split(std::string_view ln) { return data::split_fields(ln, sep_, fields_.data(), fields_.size()); }

  Lines lines_;
  int64_t M_, ncols_ = 0, header_line_ = 0, pending_line_ = 0;
  char sep_ = ',';
  double scale_ = 1e6;
  int time_col_ = -1;
  std::vector<int> axis_col_;
  std::vector<std::string> header_;
  std::vector<std::string_view> fields_;
  std::string pending_, held_;
};

// WISDM raw text: records `user,activity,timestamp,x,y,z;`, several per line allowed. The
// timestamp is the sample time in nanoseconds. Dirty records (the WISDM files hold some) are
// skipped and counted, as `prepare` does; a change of user starts a new recording.
class WisdmReader : public Reader {
 public:
  WisdmReader(const std::string& path, int64_t axes) : lines_(path) {
    if (axes != 3) fail(path + ": WISDM records have 3 axes (x, y, z), the model reads " + std::to_string(axes));
  }
  bool next(float* row, int64_t& time_ns) override {
    while (pos_ >= recs_.size()) {
      recs_.clear();
      pos_ = 0;
      std::string_view ln;
      if (!lines_.get(ln)) return false;
      parse_line(ln);
    }
    const Rec& r = recs_[pos_++];
    if (user_ >= 0 && r.user != user_) new_recording_ = true;
    user_ = r.user;
    for (int k = 0; k < 3; ++k) row[k] = r.xyz[k];
    time_ns = r.t;
    return true;
  }
  std::string summary() const override { return report_.total_skipped() ? report_.summary() : ""; }

 private:
  struct Rec {
    int64_t user, t;
    float xyz[3];
  };
  void parse_line(std::string_view ln) {
    const std::string where = lines_.where();
    if (ln.empty()) {
      report_.skip("empty line", where);
      return;
    }
    size_t b = 0;
    while (b < ln.size()) {
      size_t semi = ln.find(';', b);
      if (semi == std::string_view::npos) semi = ln.size();
      const std::string_view rec = data::trim(ln.substr(b, semi - b));
      b = semi + 1;
      if (rec.empty()) continue;
      std::string_view f[8];
      size_t nf = data::split_fields(rec, ',', f, 8);
      if (nf == 7 && data::trim(f[6]).empty()) nf = 6;  // "...,z,;"
      if (nf < 6) { report_.skip("too few fields", where); continue; }
      if (nf > 6) { report_.skip("too many fields", where); continue; }
      Rec r;
      double xyz[3];
      const Num nu = data::parse_int(f[0], r.user), nt = data::parse_int(f[2], r.t);
      const Num nx[3] = {data::parse_double(f[3], xyz[0]), data::parse_double(f[4], xyz[1]),
                         data::parse_double(f[5], xyz[2])};
      bool empty = data::trim(f[1]).empty() || nu == Num::Empty || nt == Num::Empty;
      bool bad = nu == Num::Bad || nt == Num::Bad, nonfinite = false;
      for (Num n : nx) empty |= n == Num::Empty, bad |= n == Num::Bad, nonfinite |= n == Num::NonFinite;
      if (empty) { report_.skip("missing value", where); continue; }
      if (bad) { report_.skip("non-numeric value", where); continue; }
      if (nonfinite) { report_.skip("non-finite value", where); continue; }
      if (r.user < 0 || r.user > INT32_MAX) { report_.skip("bad user id", where); continue; }
      if (r.t == 0) { report_.skip("zero timestamp", where); continue; }
      for (int k = 0; k < 3; ++k) r.xyz[k] = static_cast<float>(xyz[k]);
      recs_.push_back(r);
    }
  }
  Lines lines_;
  std::vector<Rec> recs_;
  size_t pos_ = 0;
  int64_t user_ = -1;
  data::ParseReport report_;
};

// UCI-HAPT: acc_expXX_userYY.txt and gyro_expXX_userYY.txt beside it, read in step (3 + 3 axes
// at 50 Hz, no timestamps).
class HaptReader : public Reader {
 public:
  HaptReader(const std::string& acc, int64_t axes) : acc_(acc), gyro_(gyro_path(acc)) {
    if (axes != 6)
      fail(acc + ": HAPT recordings have 6 axes (acc_x..gyro_z), the model reads " + std::to_string(axes));
  }
  bool next(float* row, int64_t& time_ns) override {
    const bool a = read3(acc_, row), g = read3(gyro_, row + 3);
    if (a != g) {
      Lines& longer = a ? acc_ : gyro_;
      Lines& shorter = a ? gyro_ : acc_;
      fail(shorter.name() + ": ends after line " + std::to_string(shorter.line()) + ", " + longer.name() +
           " has a row at line " + std::to_string(longer.line()) + " (the two files must have the same rows)");
    }
    time_ns = -1;
    return a;
  }

 private:
  static std::string gyro_path(const std::string& acc) {
    if (acc == "-") fail("--input-format hapt reads a file pair (acc_expXX_userYY.txt and its gyro_ file), not standard input");
    const std::filesystem::path p(acc);
    const std::string name = p.filename().string();
    if (!name.starts_with("acc_"))
      fail(acc + ": a HAPT input is an acc_expXX_userYY.txt file (its gyro_expXX_userYY.txt is read beside it)");
    return (p.parent_path() / ("gyro_" + name.substr(4))).string();
  }
  static bool read3(Lines& l, float* out) {
    std::string_view ln;
    do {
      if (!l.get(ln)) return false;
    } while (ln.empty());
    std::string_view tok[4];
    const size_t c = data::split_whitespace(ln, tok, 4);
    if (c != 3) fail(l.where() + ": " + (c > 3 ? "more than 3" : std::to_string(c)) + " values, expected 3");
    for (int k = 0; k < 3; ++k) {
      double v;
      const Num n = data::parse_double(tok[k], v);
      if (n == Num::Bad) fail(l.where() + ": not a number: '" + std::string(tok[k]) + "'");
      if (n == Num::NonFinite) fail(l.where() + ": non-finite value '" + std::string(tok[k]) + "'");
      out[k] = static_cast<float>(v);
    }
    return true;
  }
  Lines acc_, gyro_;
};

// Writes decisions as CSV or JSON lines, each flushed as it is made.
class Writer {
 public:
  Writer(const std::string& format, const std::vector<std::string>& classes) : csv_(format == "csv"), cls_(classes) {
    if (format != "csv" && format != "jsonl") fail("--format must be csv or jsonl, not '" + format + "'");
    for (const auto& c : classes) quoted_.push_back(nlohmann::json(c).dump());
    if (csv_) {
      line_ = "end,time_ns,label,confidence,hop_label,hop_confidence,changed";
      for (const auto& c : classes) line_ += ",p_" + c;
      emit();
    }
  }
  void write(const deploy::Decision& d) {
    char buf[160];
    const int64_t C = static_cast<int64_t>(cls_.size());
    line_.clear();
    if (csv_) {
      std::snprintf(buf, sizeof buf, "%lld,%lld,", (long long)d.end, (long long)d.time_ns);
      line_ += buf;
      line_ += d.label >= 0 ? cls_[d.label] : "unknown";
      std::snprintf(buf, sizeof buf, ",%.4f,", d.confidence);
      line_ += buf;
      line_ += cls_[d.hop_label];
      std::snprintf(buf, sizeof buf, ",%.4f,%d", d.hop_confidence, d.changed ? 1 : 0);
      line_ += buf;
      for (int64_t c = 0; c < C; ++c) {
        std::snprintf(buf, sizeof buf, ",%.4f", d.probs[c]);
        line_ += buf;
      }
    } else {
      std::snprintf(buf, sizeof buf, "{\"end\":%lld,\"time_ns\":", (long long)d.end);
      line_ += buf;
      line_ += d.time_ns >= 0 ? std::to_string(d.time_ns) : "null";
      line_ += ",\"label\":";
      line_ += d.label >= 0 ? quoted_[d.label] : "\"unknown\"";
      std::snprintf(buf, sizeof buf, ",\"confidence\":%.4f,\"hop_label\":", d.confidence);
      line_ += buf;
      line_ += quoted_[d.hop_label];
      std::snprintf(buf, sizeof buf, ",\"hop_confidence\":%.4f,\"changed\":%s,\"probs\":{", d.hop_confidence,
                    d.changed ? "true" : "false");
      line_ += buf;
      for (int64_t c = 0; c < C; ++c) {
        std::snprintf(buf, sizeof buf, "%s:%.4f", quoted_[c].c_str(), d.probs[c]);
        line_ += (c ? "," : "");
        line_ += buf;
      }
      line_ += "}}";
    }
    emit();
  }

 private:
  void emit() {
    line_ += '\n';
    if (std::fwrite(line_.data(), 1, line_.size(), stdout) != line_.size() || std::fflush(stdout) != 0)
      fail("cannot write to standard output");
  }
  bool csv_;
  const std::vector<std::string>& cls_;
  std::vector<std::string> quoted_;
  std::string line_;
};

int run(const StreamArgs& a) {
  deploy::StreamOptions so = stream_options(a.rec);
  if (!(a.max_gap_s >= 0) || a.max_gap_s > 9e9) fail("--max-gap must be a number of seconds >= 0 (0 = never restart)");
  so.max_gap_ns = static_cast<int64_t>(std::llround(a.max_gap_s * 1e9));
  deploy::check_options(so);  // option errors before the checkpoint is read

  std::string fmt = a.input_format;
  if (fmt == "auto") {
    const std::string name = std::filesystem::path(a.input).filename().string();
    if (a.input == "-" || a.input.ends_with(".csv")) fmt = "csv";
    else if (name.starts_with("acc_") && name.ends_with(".txt")) fmt = "hapt";
    else fmt = "wisdm";
  }
  if (fmt != "csv" && fmt != "wisdm" && fmt != "hapt")
    fail("--input-format must be auto, csv, wisdm or hapt, not '" + a.input_format + "'");
  if (a.input != "-" && !std::filesystem::exists(a.input)) fail(a.input + ": no such file");

  deploy::StreamRecognizer sr(a.model, so);
  std::unique_ptr<Reader> reader;
  if (fmt == "csv") reader = std::make_unique<CsvReader>(a.input, a, sr.axis_names());
  else if (fmt == "wisdm") reader = std::make_unique<WisdmReader>(a.input, sr.axes());
  else reader = std::make_unique<HaptReader>(a.input, sr.axes());
  if (fmt != "csv" && (!a.csv_axes.empty() || !a.csv_time.empty()))
    fail("--csv-axes and --csv-time apply to CSV input, not " + fmt);

  Writer out(a.format, sr.class_names());
  std::vector<float> row(sr.axes());
  int64_t recordings = 1, samples = 0;
  deploy::Decision d;
  for (int64_t t; reader->next(row.data(), t);) {
    if (reader->take_new_recording()) sr.reset(), ++recordings;
    sr.push(row.data(), 1, t >= 0 ? &t : nullptr);
    ++samples;
    while (sr.next(d)) out.write(d);
  }
  std::fprintf(stderr, "%s", reader->summary().c_str());
  std::fprintf(stderr,
               "stream: %lld samples, %lld decisions (window %lld, hop %lld, %s over %d), %lld recording%s, "
               "%lld restart%s after a time gap\n",
               (long long)samples, (long long)sr.decisions(), (long long)sr.window(), (long long)sr.hop(),
               deploy::smoothing_name(so.method), so.smooth, (long long)recordings, recordings == 1 ? "" : "s",
               (long long)sr.gaps(), sr.gaps() == 1 ? "" : "s");
  if (samples == 0) fail(a.input + ": no samples");
  return 0;
}

}  // namespace

void add_recognizer_options(CLI::App* cmd, RecognizerArgs& r) {
  cmd->add_option("--hop", r.hop, "samples between classifications (default: half a window)");
  cmd->add_option("--smooth", r.smooth, "hops the probabilities are smoothed over")->capture_default_str();
  cmd->add_option("--method", r.method, "mean | vote")->capture_default_str();
  cmd->add_option("--votes", r.votes, "vote: agreeing hops needed (default: a majority of --smooth)");
  cmd->add_option("--reject", r.reject,
                  "\"unknown\" below this smoothed probability; -1 = the checkpoint's calibrated threshold "
                  "(harvit calibrate), 0 = never")
      ->capture_default_str();
  cmd->add_option("--min-confidence", r.min_confidence, "probability a label (mean) or a vote needs")
      ->capture_default_str();
  cmd->add_option("--hysteresis", r.hysteresis, "hops a new label must win in a row")->capture_default_str();
  cmd->add_option("--precision", r.precision, "fp32 | int8")->capture_default_str();
  cmd->add_option("--threads", r.threads, "1 = the calling thread only; more = the OpenMP pool")->capture_default_str();
}

deploy::StreamOptions stream_options(const RecognizerArgs& r) {
  deploy::StreamOptions so;
  so.precision = r.precision;
  so.hop = r.hop;
  so.smooth = r.smooth;
  so.method = deploy::parse_smoothing(r.method);
  so.votes = r.votes;
  so.min_confidence = r.min_confidence;
  so.reject = r.reject;
  so.hysteresis = r.hysteresis;
  so.threads = r.threads;
  return so;
}

Runner add_stream_command(CLI::App& app) {
  auto a = std::make_shared<StreamArgs>();
  auto* cmd = app.add_subcommand("stream",
                                 "label a recording as a live stream: one line per hop, smoothed, as it is read");
  cmd->add_option("--model", a->model, "checkpoint (.safetensors)")->required();
  cmd->add_option("--input", a->input, "recording (CSV, WISDM raw .txt, HAPT acc_expXX_userYY.txt) or - for stdin")
      ->required();
  cmd->add_option("--input-format", a->input_format, "auto | csv | wisdm | hapt (auto: - and .csv are csv, acc_*.txt hapt)")
      ->capture_default_str();
  add_recognizer_options(cmd, a->rec);
  cmd->add_option("--format", a->format, "output: csv | jsonl")->capture_default_str();
  cmd->add_option("--max-gap", a->max_gap_s, "seconds; a larger time gap (or a step back) restarts the window (0 = never)")
      ->capture_default_str();
  cmd->add_option("--csv-axes", a->csv_axes, "csv: axis columns (default: the checkpoint's axis names)");
  cmd->add_option("--csv-time", a->csv_time, "csv: time column");
  cmd->add_option("--csv-time-unit", a->csv_time_unit, "csv: s | ms | us | ns")->capture_default_str();
  cmd->add_option("--csv-delimiter", a->csv_delimiter, "csv: field separator")->capture_default_str();
  return [a]() -> int { return run(*a); };
}

}  // namespace harvit::cli
