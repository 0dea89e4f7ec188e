#include "data/loaders.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/tensor.h"
#include "data/npy.h"

namespace harvit::data {

namespace fs = std::filesystem;

std::string read_text_file(const std::string& path) {
  if (fs::is_directory(path)) fail(path + ": is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open (" + std::strerror(errno) + ")");
  std::string s((std::istreambuf_iterator<char>(in)), {});
  if (s.empty()) fail(path + ": file is empty");
  return s;
}

std::vector<std::string> list_inputs(const std::string& path, const std::string& prefix, const std::string& suffix) {
  if (!fs::exists(path)) fail(path + ": no such file or folder");
  if (!fs::is_directory(path)) return {path};
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(path)) {
    if (!e.is_regular_file()) continue;
    const std::string n = e.path().filename().string();
    if (n.size() >= prefix.size() + suffix.size() && n.starts_with(prefix) && n.ends_with(suffix))
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) fail(path + ": no " + prefix + "*" + suffix + " files in this folder");
  return out;
}

std::string at(const std::string& source, int64_t line) { return source + ":" + std::to_string(line); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

Num parse_double(std::string_view s, double& v) {
  s = trim(s);
  if (s.empty()) return Num::Empty;
  if (s.front() == '+') s.remove_prefix(1);
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec == std::errc::result_out_of_range) return Num::NonFinite;
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return Num::Bad;
  return std::isfinite(v) ? Num::Ok : Num::NonFinite;
}
Num parse_int(std::string_view s, int64_t& v) {
  s = trim(s);
  if (s.empty()) return Num::Empty;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return Num::Bad;
  return Num::Ok;
}

namespace {

// Runs fn(i) for i in [0, n) on the OpenMP pool. Exceptions cannot leave a parallel region, so
// each is caught and the one of the lowest index is rethrown afterwards: the error a user sees
// is the same as a sequential run would give.
template <typename F>
void parallel_for_ordered(int64_t n, F&& fn) {
  std::vector<std::string> errors(n);
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) {
    try {
      fn(i);
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (auto& e : errors)
    if (!e.empty()) fail(e);
}

// Calls f(line_number, line) for every line of text, trimmed of blanks and '\r' (1-based numbers).
template <typename F>
void for_each_line(const std::string& text, F&& f) {
  size_t p = 0;
  int64_t line = 0;
  while (p < text.size()) {
    size_t e = text.find('\n', p);
    if (e == std::string::npos) e = text.size();
    f(++line, trim(std::string_view(text.data() + p, e - p)));
    p = e + 1;
  }
}

}  // namespace

// Splits on runs of spaces/tabs into at most `max` tokens (returns the number found, which may exceed max).
size_t split_whitespace(std::string_view s, std::string_view* out, size_t max) {
  size_t n = 0, b = 0;
  while (b < s.size()) {
    while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
    if (b >= s.size()) break;
    size_t q = b;
    while (q < s.size() && s[q] != ' ' && s[q] != '\t') ++q;
    if (n < max) out[n] = s.substr(b, q - b);
    ++n;
    b = q;
  }
  return n;
}

// Splits s on `sep` into at most `max` fields (returns the number found, which may exceed max).
size_t split_fields(std::string_view s, char sep, std::string_view* out, size_t max) {
  size_t n = 0, b = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == sep) {
      if (n < max) out[n] = s.substr(b, i - b);
      ++n;
      b = i + 1;
    }
  }
  return n;
}

namespace {

const std::vector<std::string> kWisdmV1 = {"Walking", "Jogging", "Upstairs", "Downstairs", "Sitting", "Standing"};
// WISDM 2019 activity_key.txt: letters A..S without N.
const std::vector<std::pair<char, std::string>> kWisdm2019 = {
    {'A', "walking"}, {'B', "jogging"},   {'C', "stairs"},   {'D', "sitting"},  {'E', "standing"},
    {'F', "typing"},  {'G', "teeth"},     {'H', "soup"},     {'I', "chips"},    {'J', "pasta"},
    {'K', "drinking"}, {'L', "sandwich"}, {'M', "kicking"},  {'O', "catch"},    {'P', "dribbling"},
    {'Q', "writing"}, {'R', "clapping"},  {'S', "folding"}};

// A record of a timed stream whose timestamp repeats the last kept record's, or steps back from it
// by up to two sample periods (half a period of slack for clock jitter), within the same label, is
// a repeated or out-of-order record: the caller drops and counts it instead of keeping it, where
// it would cut the run (make_windows cuts at any step back). A larger step back, a gap or a change
// of subject or label still cuts the run in make_windows.
constexpr const char* kRepeatedRecord = "repeated or out-of-order record";
bool repeated_or_out_of_order(const RawStream& st, int64_t t_ns, int32_t label, double rate_hz) {
  if (st.time_ns.empty() || st.label.back() != label) return false;
  const int64_t prev = st.time_ns.back();
  // The difference in double: prev - t_ns overflows int64 for far-apart stamps (e.g. t = -1e300 ms).
  return t_ns <= prev && static_cast<double>(prev) - static_cast<double>(t_ns) <= 2.5e9 / rate_hz;
}

}  // namespace

// ---- WISDM raw -------------------------------------------------------------------------------

void parse_wisdm_text(const std::string& text, const std::string& source, RawData& out) {
  // Release is decided by the first record's activity field (a name or a single letter).
  std::map<std::string, int32_t> cls;
  auto set_release = [&](bool v2019) {
    if (out.class_names.empty()) {
      if (v2019) for (auto& [c, n] : kWisdm2019) out.class_names.push_back(n);
      else out.class_names = kWisdmV1;
      out.axis_names = {"x", "y", "z"};
      out.rate_hz = 20.0;
      out.name = v2019 ? "wisdm-2019" : "wisdm-v1.1";
    }
  };
  std::map<std::string, std::pair<int64_t, std::string>> unknown;  // activity -> (count, first position)
  std::map<int32_t, size_t> stream_of;  // user -> stream index (for this file)
  for_each_line(text, [&](int64_t line, std::string_view ln) {
    if (ln.empty()) {
      out.report.skip("empty line", at(source, line));
      return;
    }
    // Several records may share a line; each ends with ';' (the last one may lack it).
    size_t b = 0;
    while (b < ln.size()) {
      size_t semi = ln.find(';', b);
      if (semi == std::string_view::npos) semi = ln.size();
      std::string_view rec = trim(ln.substr(b, semi - b));
      b = semi + 1;
      if (rec.empty()) continue;  // the space after a ';' or a doubled ';;'
      std::string_view f[8];
      size_t nf = split_fields(rec, ',', f, 8);
      if (nf == 7 && trim(f[6]).empty()) nf = 6;  // "...,z,;" : a trailing comma
      if (nf < 6) { out.report.skip("too few fields", at(source, line)); continue; }
      if (nf > 6) { out.report.skip("too many fields", at(source, line)); continue; }
      int64_t user = 0, ts = 0;
      double xyz[3];
      Num nu = parse_int(f[0], user);
      Num nt = parse_int(f[2], ts);
      Num nx[3] = {parse_double(f[3], xyz[0]), parse_double(f[4], xyz[1]), parse_double(f[5], xyz[2])};
      const std::string act(trim(f[1]));
      bool empty = act.empty() || nu == Num::Empty || nt == Num::Empty;
      bool bad = nu == Num::Bad || nt == Num::Bad;
      bool nonfinite = false;
      for (Num n : nx) empty |= n == Num::Empty, bad |= n == Num::Bad, nonfinite |= n == Num::NonFinite;
      if (empty) { out.report.skip("missing value", at(source, line)); continue; }
      if (bad) { out.report.skip("non-numeric value", at(source, line)); continue; }
      if (nonfinite) { out.report.skip("non-finite value", at(source, line)); continue; }
      if (user < 0 || user > INT32_MAX) { out.report.skip("bad user id", at(source, line)); continue; }
      if (ts == 0) { out.report.skip("zero timestamp", at(source, line)); continue; }
      if (out.class_names.empty()) set_release(act.size() == 1);
      if (cls.empty())
        for (size_t k = 0; k < out.class_names.size(); ++k)
          cls[out.name == "wisdm-2019" ? std::string(1, kWisdm2019[k].first) : out.class_names[k]] = static_cast<int32_t>(k);
      auto it = cls.find(act);
      if (it == cls.end()) {
        auto& u = unknown[act];
        if (u.first++ == 0) u.second = at(source, line);
        continue;
      }
      auto s = stream_of.find(static_cast<int32_t>(user));
      if (s == stream_of.end()) {
        s = stream_of.emplace(static_cast<int32_t>(user), out.streams.size()).first;
        out.streams.push_back({source, static_cast<int32_t>(user), {}, {}, {}});
      }
      RawStream& st = out.streams[s->second];
      if (repeated_or_out_of_order(st, ts, it->second, out.rate_hz)) {
        out.report.skip(kRepeatedRecord, at(source, line));
        continue;
      }
      st.time_ns.push_back(ts);
      for (double v : xyz) st.values.push_back(static_cast<float>(v));
      st.label.push_back(it->second);
      ++out.report.records;
    }
  });
  if (!unknown.empty()) {
    std::string list;
    for (auto& [a, u] : unknown) list += "\n  '" + a + "' x " + std::to_string(u.first) + " (first at " + u.second + ")";
    std::string known;
    for (auto& [k, v] : cls) known += (known.empty() ? "" : ", ") + k;
    fail(source + ": unknown activity names (known: " + known + "):" + list);
  }
}

RawData parse_wisdm_files(const std::vector<std::string>& files) {
  // Files are parsed in parallel, then merged in file order (streams, counts, first examples).
  std::vector<RawData> parts(files.size());
  parallel_for_ordered(static_cast<int64_t>(files.size()),
                       [&](int64_t i) { parse_wisdm_text(read_text_file(files[i]), files[i], parts[i]); });
  RawData raw;
  for (size_t i = 0; i < parts.size(); ++i) {
    RawData& p = parts[i];
    if (p.name.empty()) continue;  // no valid record in this file
    if (raw.name.empty()) {
      raw.name = p.name;
      raw.class_names = p.class_names;
      raw.axis_names = p.axis_names;
      raw.rate_hz = p.rate_hz;
    } else if (p.name != raw.name) {
      fail(files[i] + ": mixes WISDM releases (" + raw.name + " and " + p.name + ")");
    }
    for (auto& st : p.streams) raw.streams.push_back(std::move(st));
  }
  for (auto& p : parts) {
    raw.report.records += p.report.records;
    for (auto& [kind, n] : p.report.skipped) {
      raw.report.skipped[kind] += n;
      auto& ex = raw.report.examples[kind];
      for (auto& e : p.report.examples[kind])
        if (ex.size() < 3) ex.push_back(e);
    }
  }
  if (raw.report.records == 0) fail((files.empty() ? std::string("WISDM input") : files[0]) + ": no valid records");
  return raw;
}

// ---- UCI-HAPT --------------------------------------------------------------------------------

namespace {
// Reads whitespace-separated rows of exactly `cols` numbers.
std::vector<float> read_matrix(const std::string& path, int cols, int64_t& rows) {
  const std::string text = read_text_file(path);
  std::vector<float> out;
  std::vector<std::string_view> tok(cols + 1);
  rows = 0;
  for_each_line(text, [&](int64_t line, std::string_view ln) {
    if (ln.empty()) return;
    const size_t c = split_whitespace(ln, tok.data(), tok.size());
    if (c != static_cast<size_t>(cols))
      fail(at(path, line) + ": " + (c > static_cast<size_t>(cols) ? "more than " + std::to_string(cols) : std::to_string(c)) +
           " values, expected " + std::to_string(cols));
    for (size_t k = 0; k < c; ++k) {
      double v;
      Num n = parse_double(tok[k], v);
      if (n == Num::Bad) fail(at(path, line) + ": not a number: '" + std::string(tok[k]) + "'");
      if (n == Num::NonFinite) fail(at(path, line) + ": non-finite value '" + std::string(tok[k]) + "'");
      out.push_back(static_cast<float>(v));
    }
    ++rows;
  });
  if (rows == 0) fail(path + ": no data rows");
  return out;
}
}  // namespace

std::vector<HaptSegment> parse_hapt_labels(const std::string& text, const std::string& source) {
  std::vector<HaptSegment> segs;
  for_each_line(text, [&](int64_t line, std::string_view ln) {
    if (ln.empty()) return;
    std::string_view tok[5];
    const size_t c = split_whitespace(ln, tok, 5);
    if (c > 5) fail(at(source, line) + ": more than 5 fields (expected: experiment user activity start end)");
    if (c != 5) fail(at(source, line) + ": " + std::to_string(c) + " fields, expected 5 (experiment user activity start end)");
    int64_t v[5];
    for (int k = 0; k < 5; ++k)
      if (parse_int(tok[k], v[k]) != Num::Ok) fail(at(source, line) + ": not an integer: '" + std::string(tok[k]) + "'");
    if (v[2] < 1 || v[2] > 12) fail(at(source, line) + ": activity " + std::to_string(v[2]) + " is outside 1..12");
    if (v[3] < 1 || v[4] < v[3]) fail(at(source, line) + ": segment " + std::to_string(v[3]) + ".." + std::to_string(v[4]) + " is empty or starts before 1");
    if (v[0] < 0 || v[0] > 100000 || v[1] < 0 || v[1] > 100000) fail(at(source, line) + ": experiment or user id out of range");
    segs.push_back({static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]), v[3], v[4], static_cast<int>(line)});
  });
  if (segs.empty()) fail(source + ": no label segments");
  return segs;
}

RawData load_hapt(const std::string& dir_in, bool transitions) {
  std::string dir = dir_in;
  if (fs::is_directory(dir + "/RawData")) dir += "/RawData";
  else if (fs::is_directory(dir + "/HAPT Dataset/RawData")) dir += "/HAPT Dataset/RawData";
  const std::string labels_path = dir + "/labels.txt";
  if (!fs::exists(labels_path)) fail(dir_in + ": no labels.txt (expected the HAPT RawData folder)");
  auto segs = parse_hapt_labels(read_text_file(labels_path), labels_path);
  RawData raw;
  raw.name = transitions ? "uci-hapt (with transitions)" : "uci-hapt";
  raw.rate_hz = 50.0;
  raw.axis_names = {"acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"};
  raw.class_names = {"Walking", "Upstairs", "Downstairs", "Sitting", "Standing", "Laying"};
  if (transitions)
    for (const char* n : {"Stand-to-sit", "Sit-to-stand", "Sit-to-lie", "Lie-to-sit", "Stand-to-lie", "Lie-to-stand"})
      raw.class_names.push_back(n);
  std::map<std::pair<int, int>, std::vector<const HaptSegment*>> by_exp;
  for (const auto& s : segs) by_exp[{s.exp, s.user}].push_back(&s);
  // Experiments are read in parallel; streams keep the order of labels.txt's (experiment, user) keys.
  std::vector<std::pair<std::pair<int, int>, std::vector<const HaptSegment*>>> exps(by_exp.begin(), by_exp.end());
  raw.streams.resize(exps.size());
  std::vector<int64_t> labelled(exps.size(), 0);
  parallel_for_ordered(static_cast<int64_t>(exps.size()), [&](int64_t e) {
    const auto& [key, list] = exps[e];
    char name[64];
    std::snprintf(name, sizeof name, "exp%02d_user%02d.txt", key.first, key.second);
    const std::string acc_path = dir + "/acc_" + name, gyro_path = dir + "/gyro_" + name;
    if (!fs::exists(acc_path))
      fail(at(labels_path, list[0]->line) + ": refers to experiment " + std::to_string(key.first) + " of user " +
           std::to_string(key.second) + " but " + acc_path + " does not exist");
    int64_t na = 0, ng = 0;
    auto acc = read_matrix(acc_path, 3, na);
    auto gyro = read_matrix(gyro_path, 3, ng);
    if (na != ng) fail(gyro_path + ": " + std::to_string(ng) + " rows but " + acc_path + " has " + std::to_string(na));
    RawStream st;
    st.source = acc_path;
    st.subject = key.second;
    st.values.resize(na * 6);
    for (int64_t i = 0; i < na; ++i)
      for (int k = 0; k < 3; ++k) st.values[i * 6 + k] = acc[i * 3 + k], st.values[i * 6 + 3 + k] = gyro[i * 3 + k];
    st.label.assign(na, -1);
    for (const HaptSegment* s : list) {
      if (s->end > na)
        fail(at(labels_path, s->line) + ": segment " + std::to_string(s->start) + ".." + std::to_string(s->end) +
             " points past the end of " + acc_path + " (" + std::to_string(na) + " rows)");
      const int cls = s->activity <= 6 ? s->activity - 1 : (transitions ? s->activity - 1 : -1);
      for (int64_t i = s->start - 1; i < s->end; ++i) st.label[i] = cls;
      if (cls >= 0) labelled[e] += s->end - s->start + 1;
    }
    raw.streams[e] = std::move(st);
  });
  for (int64_t n : labelled) raw.report.records += n;
  return raw;
}

// ---- generic CSV -----------------------------------------------------------------------------

void parse_csv_text(const std::string& text, const std::string& source, const CsvOptions& opt, RawData& out) {
  if (opt.axis_cols.empty()) fail("CSV needs at least one axis column");
  // The header is the first non-empty line.
  std::vector<std::string> header;
  int64_t header_line = 0;
  for_each_line(text, [&](int64_t line, std::string_view ln) {
    if (header_line || ln.empty()) return;
    std::string_view f[256];
    size_t n = split_fields(ln, opt.delimiter, f, 256);
    if (n > 256) fail(at(source, line) + ": more than 256 columns");
    for (size_t i = 0; i < n; ++i) header.emplace_back(trim(f[i]));
    header_line = line;
  });
  if (!header_line) fail(source + ": file has no header row");
  auto col = [&](const std::string& name, bool required) -> int {
    if (name.empty()) {
      if (required) fail(source + ": a required column was not given");
      return -1;
    }
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == name) return static_cast<int>(i);
    std::string have;
    for (auto& h : header) have += (have.empty() ? "" : ", ") + h;
    fail(at(source, header_line) + ": no column named '" + name + "' in the header (columns: " + have + ")");
  };
  const int ci_label = col(opt.label_col, false), ci_subject = col(opt.subject_col, false), ci_time = col(opt.time_col, false);
  std::vector<int> ci_axes;
  for (auto& a : opt.axis_cols) ci_axes.push_back(col(a, true));
  if (out.axis_names.empty()) {
    out.axis_names = opt.axis_cols;
    out.rate_hz = opt.rate_hz;
    out.name = "csv";
  } else if (out.axis_names != opt.axis_cols) {
    fail(source + ": axis columns differ from the previous file");
  }
  std::map<std::string, int32_t> cls;
  for (size_t k = 0; k < out.class_names.size(); ++k) cls[out.class_names[k]] = static_cast<int32_t>(k);
  std::map<int32_t, size_t> stream_of;
  std::vector<std::string_view> f(header.size() + 1);
  std::vector<float> row;
  for_each_line(text, [&](int64_t line, std::string_view ln) {
    if (line <= header_line || ln.empty()) return;
    size_t n = split_fields(ln, opt.delimiter, f.data(), f.size());
    if (n != header.size())
      fail(at(source, line) + ": " + std::to_string(n) + " columns, the header has " + std::to_string(header.size()));
    int64_t subj = 0;
    if (ci_subject >= 0 && parse_int(f[ci_subject], subj) != Num::Ok)
      fail(at(source, line) + ": subject '" + std::string(trim(f[ci_subject])) + "' is not an integer");
    double t = 0;
    if (ci_time >= 0) {
      Num r = parse_double(f[ci_time], t);
      if (r != Num::Ok) fail(at(source, line) + ": time '" + std::string(trim(f[ci_time])) + "' is not a finite number");
      if (std::fabs(t * opt.time_scale_ns) > 4.6e18)  // past +-2^62 ns (146 years): not a sensor clock
        fail(at(source, line) + ": time '" + std::string(trim(f[ci_time])) + "' is out of range (over 146 years in ns)");
    }
    int32_t label_index = -1;  // unlabelled recordings (prediction input) have no label column
    if (ci_label >= 0) {
      const std::string label(trim(f[ci_label]));
      if (label.empty()) fail(at(source, line) + ": empty label");
      auto it = cls.find(label);
      if (it == cls.end()) {
        it = cls.emplace(label, static_cast<int32_t>(out.class_names.size())).first;
        out.class_names.push_back(label);
      }
      label_index = it->second;
    }
    auto s = stream_of.find(static_cast<int32_t>(subj));
    if (s == stream_of.end()) {
      s = stream_of.emplace(static_cast<int32_t>(subj), out.streams.size()).first;
      out.streams.push_back({source, static_cast<int32_t>(subj), {}, {}, {}});
    }
    row.clear();
    for (int c : ci_axes) {
      double v;
      Num r = parse_double(f[c], v);
      if (r == Num::Empty) fail(at(source, line) + ": missing value in column '" + header[c] + "'");
      if (r == Num::Bad) fail(at(source, line) + ": '" + std::string(trim(f[c])) + "' in column '" + header[c] + "' is not a number");
      if (r == Num::NonFinite) fail(at(source, line) + ": non-finite value in column '" + header[c] + "'");
      row.push_back(static_cast<float>(v));
    }
    RawStream& st = out.streams[s->second];
    const int64_t t_ns = static_cast<int64_t>(std::llround(t * opt.time_scale_ns));
    if (ci_time >= 0 && repeated_or_out_of_order(st, t_ns, label_index, opt.rate_hz)) {
      out.report.skip(kRepeatedRecord, at(source, line));
      return;
    }
    st.values.insert(st.values.end(), row.begin(), row.end());
    if (ci_time >= 0) st.time_ns.push_back(t_ns);
    st.label.push_back(label_index);
    ++out.report.records;
  });
  if (out.report.records == 0) fail(source + ": no data rows after the header");
}

RawData load_csv(const std::string& path, const CsvOptions& opt) {
  RawData raw;
  for (const auto& f : list_inputs(path, "", ".csv")) parse_csv_text(read_text_file(f), f, opt, raw);
  // Class indices in order of first appearance would depend on file order; sort by name instead.
  std::vector<std::string> sorted = raw.class_names;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int32_t> remap(raw.class_names.size());
  for (size_t k = 0; k < raw.class_names.size(); ++k)
    remap[k] = static_cast<int32_t>(std::lower_bound(sorted.begin(), sorted.end(), raw.class_names[k]) - sorted.begin());
  for (auto& st : raw.streams)
    for (auto& l : st.label)
      if (l >= 0) l = remap[l];
  raw.class_names = sorted;
  return raw;
}

// ---- windowing -------------------------------------------------------------------------------

Dataset make_windows(const RawData& raw, const WindowOptions& opt) {
  if (opt.length <= 0 || opt.stride <= 0) fail("window length and stride must be positive");
  const int64_t M = static_cast<int64_t>(raw.axis_names.size()), W = opt.length;
  const double gap_s = opt.max_gap_s > 0 ? opt.max_gap_s : 5.0 / raw.rate_hz;
  const int64_t gap_ns = static_cast<int64_t>(gap_s * 1e9);
  // b - a for a <= b, exact in uint64 where int64 overflows (stamps from -9.2e18 to 9.2e18 ns).
  auto forward_step = [](int64_t a, int64_t b) { return static_cast<uint64_t>(b) - static_cast<uint64_t>(a); };
  const uint64_t gap = gap_ns < 0 ? 0 : static_cast<uint64_t>(gap_ns);
  Dataset ds;
  ds.name = raw.name;
  ds.T = W;
  ds.M = M;
  ds.class_names = raw.class_names;
  ds.axis_names = raw.axis_names;
  ds.stride = opt.stride < W ? opt.stride : 0;
  int32_t run_id = 0;
  int64_t runs_total = 0, samples_in_short_runs = 0;
  // What the time cuts cost: the windows a timestamp-blind cut (subject and label changes only, as
  // the seed's preprocessing does) would give from the same records, and the cuts by kind.
  int64_t windows_time_blind = 0, cuts_gap = 0, cuts_step_back = 0;
  auto windows_in = [&](int64_t len) { return len >= W ? (len - W) / opt.stride + 1 : 0; };
  for (const auto& st : raw.streams) {
    const bool timed = !st.time_ns.empty();
    const int64_t n = st.size();
    for (int64_t b = 0, e = 0; b < n; b = e) {
      for (e = b + 1; e < n && st.label[e] == st.label[b]; ++e)
        if (timed) {
          cuts_step_back += st.time_ns[e] < st.time_ns[e - 1];
          cuts_gap += st.time_ns[e] >= st.time_ns[e - 1] && forward_step(st.time_ns[e - 1], st.time_ns[e]) > gap;
        }
      if (st.label[b] >= 0) windows_time_blind += windows_in(e - b);
    }
    int64_t b = 0;
    while (b < n) {
      int64_t e = b + 1;
      while (e < n && st.label[e] == st.label[b] &&
             (!timed || (st.time_ns[e] >= st.time_ns[e - 1] && forward_step(st.time_ns[e - 1], st.time_ns[e]) <= gap)))
        ++e;
      if (st.label[b] >= 0) {
        ++runs_total;
        if (e - b < W) samples_in_short_runs += e - b;
        int32_t pos = 0;
        for (int64_t s = b; s + W <= e; s += opt.stride) {
          ds.x.insert(ds.x.end(), st.values.begin() + s * M, st.values.begin() + (s + W) * M);
          ds.y.push_back(st.label[b]);
          ds.subject.push_back(st.subject);
          ds.run.push_back(run_id);
          ds.pos.push_back(pos++);
        }
        ++run_id;
      }
      b = e;
    }
  }
  if (ds.y.empty())
    fail(raw.name + ": too few samples for one window of " + std::to_string(W) + " (" + std::to_string(runs_total) +
         " runs, none that long; gap threshold " + std::to_string(gap_s) + " s)");
  ds.split.assign(ds.y.size(), kTrain);
  ds.info = {{"source", raw.name}, {"window", W}, {"stride", opt.stride}, {"max_gap_s", gap_s},
             {"runs", runs_total}, {"samples_in_runs_shorter_than_a_window", samples_in_short_runs},
             {"time_cuts", {{"gap", cuts_gap}, {"step_back", cuts_step_back}}},
             {"windows_if_time_ignored", windows_time_blind},
             {"parse", raw.report.to_json()}, {"given_split", false}};
  return ds;
}

std::string time_cut_summary(const Dataset& ds) {
  if (!ds.info.contains("time_cuts")) return "";
  const auto& c = ds.info["time_cuts"];
  const int64_t gap = c.value("gap", int64_t{0}), back = c.value("step_back", int64_t{0});
  const int64_t blind = ds.info.value("windows_if_time_ignored", int64_t{0}), n = ds.size();
  if (gap == 0 && back == 0) return "";
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "time cuts: %lld x gap over %.3g s, %lld x step back; %lld windows, %lld if timestamps were "
                "ignored (%.1f %% fewer)\n",
                (long long)gap, ds.info.value("max_gap_s", 0.0), (long long)back, (long long)n, (long long)blind,
                blind > 0 ? 100.0 * double(blind - n) / double(blind) : 0.0);
  return buf;
}

// ---- pre-windowed sets -----------------------------------------------------------------------

Dataset load_wisdm_npy(const std::string& dir) {
  if (!fs::is_directory(dir)) fail(dir + ": not a folder (expected the unpacked WISDM .npy windows)");
  auto X = npy_load(dir + "/wisdm_X.npy");
  auto y = npy_load(dir + "/wisdm_y.npy");
  auto u = npy_load(dir + "/wisdm_user.npy");
  auto s = npy_load(dir + "/wisdm_split.npy");
  if (X.shape.size() != 3) fail(X.path + ": expected shape (N, T, M), got " + shape_str(X.shape));
  const int64_t N = X.shape[0];
  for (auto* a : {&y, &u, &s})
    if (a->shape.size() != 1 || a->shape[0] != N)
      fail(a->path + ": expected shape (" + std::to_string(N) + ",), got " + shape_str(a->shape));
  Dataset ds;
  ds.name = "wisdm-v1.1-windows";
  ds.T = X.shape[1];
  ds.M = X.shape[2];
  // Codes are alphabetical (see the dataset's SOURCE.md for how the mapping was established).
  ds.class_names = {"Downstairs", "Jogging", "Sitting", "Standing", "Upstairs", "Walking"};
  ds.axis_names = {"x", "y", "z"};
  if (ds.M != 3) fail(X.path + ": WISDM windows must have 3 axes, got " + std::to_string(ds.M));
  ds.x.resize(X.values.size());
  for (size_t i = 0; i < X.values.size(); ++i) {
    if (!std::isfinite(X.values[i])) fail(X.path + ": non-finite value at flat index " + std::to_string(i));
    ds.x[i] = static_cast<float>(X.values[i]);
  }
  for (int64_t i = 0; i < N; ++i) {
    if (y.values[i] < 0 || y.values[i] > 5 || y.values[i] != std::floor(y.values[i]))
      fail(y.path + ": label " + std::to_string(y.values[i]) + " at index " + std::to_string(i) + " is not in 0..5");
    if (s.values[i] != 0 && s.values[i] != 1)
      fail(s.path + ": split code " + std::to_string(s.values[i]) + " at index " + std::to_string(i) + " is not 0 (train) or 1 (test)");
    ds.y.push_back(static_cast<int32_t>(y.values[i]));
    ds.subject.push_back(static_cast<int32_t>(u.values[i]));
    ds.run.push_back(static_cast<int32_t>(i));
    ds.pos.push_back(0);
    ds.split.push_back(s.values[i] == 0 ? kTrain : kTest);
  }
  ds.stride = 0;  // AdaTime's windows do not overlap
  ds.info = {{"source", "WISDM v1.1 AdaTime windows (" + dir + ")"}, {"given_split", true},
             {"given_split_kind", "AdaTime within-user train/test"}};
  return ds;
}

Dataset load_uci_har(const std::string& dir_in) {
  std::string dir = dir_in;
  if (fs::is_directory(dir + "/UCI HAR Dataset")) dir += "/UCI HAR Dataset";
  if (!fs::is_directory(dir + "/train") || !fs::is_directory(dir + "/test"))
    fail(dir_in + ": expected the UCI HAR Dataset folder (with train/ and test/)");
  Dataset ds;
  ds.name = "uci-har";
  ds.T = 128;
  ds.M = 9;
  ds.class_names = {"Walking", "Upstairs", "Downstairs", "Sitting", "Standing", "Laying"};
  const char* sig[9] = {"body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x", "body_gyro_y",
                        "body_gyro_z", "total_acc_x", "total_acc_y", "total_acc_z"};
  for (auto* s : sig) ds.axis_names.push_back(s);
  int32_t run_id = 0;
  for (const char* part : {"train", "test"}) {
    const std::string base = dir + "/" + part + "/";
    int64_t ny = 0, ns = 0;
    auto yv = read_matrix(base + "y_" + part + ".txt", 1, ny);
    auto sv = read_matrix(base + "subject_" + part + ".txt", 1, ns);
    if (ny != ns) fail(base + "subject_" + part + ".txt: " + std::to_string(ns) + " rows but y has " + std::to_string(ny));
    std::vector<std::vector<float>> ch(9);
    parallel_for_ordered(9, [&](int64_t c) {
      int64_t rows = 0;
      const std::string p = base + "Inertial Signals/" + sig[c] + "_" + part + ".txt";
      ch[c] = read_matrix(p, 128, rows);
      if (rows != ny) fail(p + ": " + std::to_string(rows) + " rows but y_" + part + ".txt has " + std::to_string(ny));
    });
    const size_t off = ds.y.size();
    ds.x.resize((off + ny) * 128 * 9);
    for (int64_t i = 0; i < ny; ++i) {
      // Range-check the floats before converting: a huge value (1e30) does not fit an integer.
      if (!(yv[i] >= 1 && yv[i] <= 6) || yv[i] != std::trunc(yv[i]))
        fail(at(base + "y_" + part + ".txt", i + 1) + ": label must be 1..6");
      const int64_t lab = static_cast<int64_t>(yv[i]);
      if (!(sv[i] >= 0 && sv[i] <= 1e6) || sv[i] != std::trunc(sv[i]))
        fail(at(base + "subject_" + part + ".txt", i + 1) + ": subject must be a whole number 0..1000000");
      for (int64_t t = 0; t < 128; ++t)
        for (int c = 0; c < 9; ++c) ds.x[((off + i) * 128 + t) * 9 + c] = ch[c][i * 128 + t];
      ds.y.push_back(static_cast<int32_t>(lab - 1));
      ds.subject.push_back(static_cast<int32_t>(sv[i]));
      // Consecutive rows of one subject and activity are one recording, windows 50 % apart.
      const bool same = i > 0 && ds.subject.back() == ds.subject[off + i - 1] && ds.y.back() == ds.y[off + i - 1];
      if (i > 0 && !same) ++run_id;
      ds.run.push_back(run_id);
      ds.pos.push_back(same ? ds.pos.back() + 1 : 0);
      ds.split.push_back(std::string(part) == "train" ? kTrain : kTest);
    }
    ++run_id;
  }
  ds.stride = 64;
  ds.info = {{"source", "UCI-HAR Inertial Signals (" + dir + ")"}, {"given_split", true},
             {"given_split_kind", "official subject split (21 train / 9 test subjects)"}};
  return ds;
}

}  // namespace harvit::data
