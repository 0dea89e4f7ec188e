#include "data/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>
#include <set>
#include <sstream>

#include "core/rng.h"
#include "core/safetensors.h"  // write_file_atomic
#include "core/tensor.h"

namespace harvit::data {

using json = nlohmann::json;

const char* split_name(uint8_t s) {
  switch (s) {
    case kTrain: return "train";
    case kVal: return "val";
    case kTest: return "test";
    default: return "dropped";
  }
}

// ---- ParseReport -----------------------------------------------------------------------------

void ParseReport::skip(const std::string& kind, const std::string& where) {
  ++skipped[kind];
  auto& ex = examples[kind];
  if (ex.size() < 3) ex.push_back(where);
}

int64_t ParseReport::total_skipped() const {
  int64_t n = 0;
  for (auto& [k, v] : skipped) n += v;
  return n;
}

std::string ParseReport::summary() const {
  std::ostringstream os;
  os << records << " records accepted, " << total_skipped() << " skipped\n";
  for (auto& [k, v] : skipped) {
    os << "  skipped " << v << " x " << k << " (e.g.";
    for (auto& e : examples.at(k)) os << " " << e;
    os << ")\n";
  }
  return os.str();
}

json ParseReport::to_json() const { return json{{"records", records}, {"skipped", skipped}, {"examples", examples}}; }

// ---- Dataset ---------------------------------------------------------------------------------

int64_t Dataset::count(uint8_t s) const { return std::count(split.begin(), split.end(), s); }

std::vector<int64_t> Dataset::indices(uint8_t s) const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < size(); ++i)
    if (split[i] == s) out.push_back(i);
  return out;
}

void Dataset::validate() const {
  const int64_t N = size();
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) fail("dataset " + name + ": " + what);
  };
  need(T > 0 && M > 0, "T and M must be positive");
  need(static_cast<int64_t>(x.size()) == N * T * M, "x has " + std::to_string(x.size()) + " values, expected N*T*M");
  need(static_cast<int64_t>(subject.size()) == N && static_cast<int64_t>(run.size()) == N &&
           static_cast<int64_t>(pos.size()) == N && static_cast<int64_t>(split.size()) == N,
       "per-window arrays differ in length");
  need(!class_names.empty(), "no class names");
  need(static_cast<int64_t>(axis_names.size()) == M, "axis names do not match M");
  for (int64_t i = 0; i < N; ++i) {
    need(y[i] >= 0 && y[i] < static_cast<int32_t>(class_names.size()),
         "window " + std::to_string(i) + " has label " + std::to_string(y[i]) + " outside the " +
             std::to_string(class_names.size()) + " classes");
    need(split[i] <= kTest || split[i] == kDropped, "window " + std::to_string(i) + " has an invalid split code");
  }
  need(mean.empty() || (static_cast<int64_t>(mean.size()) == M && static_cast<int64_t>(std.size()) == M),
       "normalisation statistics do not match M");
}

namespace {
constexpr char kMagic[8] = {'H', 'V', 'I', 'T', 'D', 'A', 'T', 'A'};

template <typename T>
void append(std::string& out, const std::vector<T>& v) {
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}
template <typename T>
void take(const std::string& in, size_t& off, std::vector<T>& v, int64_t n, const std::string& path, const char* what) {
  const size_t bytes = static_cast<size_t>(n) * sizeof(T);
  if (in.size() - off < bytes) fail(path + ": dataset file truncated inside the " + std::string(what) + " array");
  v.resize(n);
  if (bytes) std::memcpy(v.data(), in.data() + off, bytes);  // v.data() may be null when n == 0
  off += bytes;
}
}  // namespace

void save_dataset(const std::string& path, const Dataset& ds) {
  ds.validate();
  json h{{"name", ds.name},       {"T", ds.T},         {"M", ds.M},          {"N", ds.size()},
         {"class_names", ds.class_names}, {"axis_names", ds.axis_names}, {"mean", ds.mean},
         {"std", ds.std},         {"stride", ds.stride}, {"info", ds.info}};
  const std::string hs = h.dump();
  std::string out(kMagic, 8);
  uint32_t ver = kDatasetVersion, reserved = 0;
  uint64_t hl = hs.size();
  out.append(reinterpret_cast<const char*>(&ver), 4);
  out.append(reinterpret_cast<const char*>(&reserved), 4);
  out.append(reinterpret_cast<const char*>(&hl), 8);
  out += hs;
  append(out, ds.x);
  append(out, ds.y);
  append(out, ds.subject);
  append(out, ds.run);
  append(out, ds.pos);
  append(out, ds.split);
  write_file_atomic(path, out);
}

Dataset load_dataset(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path + ": cannot open (" + std::strerror(errno) + ")");
  std::string in((std::istreambuf_iterator<char>(f)), {});
  if (in.size() < 24 || std::memcmp(in.data(), kMagic, 8) != 0)
    fail(path + ": not a harvit dataset file (bad magic); create one with `harvit prepare`");
  uint32_t ver;
  uint64_t hl;
  std::memcpy(&ver, in.data() + 8, 4);
  std::memcpy(&hl, in.data() + 16, 8);
  if (ver != kDatasetVersion)
    fail(path + ": dataset file version " + std::to_string(ver) + ", this harvit reads version " +
         std::to_string(kDatasetVersion) + "; re-run `harvit prepare`");
  if (hl > in.size() - 24) fail(path + ": dataset file truncated inside its header");
  json h;
  try {
    h = json::parse(in.substr(24, hl));
  } catch (const json::exception& e) {
    fail(path + ": dataset header is not valid JSON: " + e.what());
  }
  Dataset ds;
  int64_t N = 0;
  // Sizes must be JSON integers: converting a huge float such as 1e300 to int64 is undefined.
  auto integer = [&](const char* key) {
    const json& v = h.at(key);
    if (!v.is_number_integer()) fail(path + ": dataset header field \"" + key + "\" is not an integer");
    return v.get<int64_t>();
  };
  try {
    ds.name = h.at("name").get<std::string>();
    ds.T = integer("T");
    ds.M = integer("M");
    N = integer("N");
    ds.class_names = h.at("class_names").get<std::vector<std::string>>();
    ds.axis_names = h.at("axis_names").get<std::vector<std::string>>();
    ds.mean = h.at("mean").get<std::vector<float>>();
    ds.std = h.at("std").get<std::vector<float>>();
    ds.stride = integer("stride");
    ds.info = h.at("info");
  } catch (const json::exception& e) {
    fail(path + ": dataset header is incomplete: " + e.what());
  }
  if (N < 0 || ds.T <= 0 || ds.M <= 0 || N > (int64_t{1} << 32) || ds.T > (int64_t{1} << 24) ||
      ds.M > (int64_t{1} << 24) || ds.T * ds.M > (int64_t{1} << 24))
    fail(path + ": dataset header has impossible sizes (N=" + std::to_string(N) + ", T=" + std::to_string(ds.T) +
         ", M=" + std::to_string(ds.M) + ")");
  size_t off = 24 + hl;
  take(in, off, ds.x, N * ds.T * ds.M, path, "window");
  take(in, off, ds.y, N, path, "label");
  take(in, off, ds.subject, N, path, "subject");
  take(in, off, ds.run, N, path, "run");
  take(in, off, ds.pos, N, path, "position");
  take(in, off, ds.split, N, path, "split");
  if (off != in.size()) fail(path + ": " + std::to_string(in.size() - off) + " unexpected bytes after the data");
  try {
    ds.validate();
  } catch (const std::exception& e) {
    fail(path + ": " + e.what());
  }
  return ds;
}

// ---- splits ----------------------------------------------------------------------------------

namespace {

std::vector<int32_t> sorted_subjects(const Dataset& ds, int only_split = -1) {
  std::set<int32_t> s;
  for (int64_t i = 0; i < ds.size(); ++i)
    if (only_split < 0 || ds.split[i] == only_split) s.insert(ds.subject[i]);
  return {s.begin(), s.end()};
}

template <typename T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

// Picks max(1, round(frac * n)) items (0 when frac <= 0), seeded.
std::vector<int32_t> pick(std::vector<int32_t> from, double frac, Rng& rng) {
  if (frac <= 0 || from.empty()) return {};
  shuffle(from, rng);
  size_t k = std::max<size_t>(1, static_cast<size_t>(std::llround(frac * from.size())));
  k = std::min(k, from.size());
  from.resize(k);
  std::sort(from.begin(), from.end());
  return from;
}

// Within each run (windows in time order), a window whose part differs from the previous
// part's last kept window and overlaps it is dropped: no window straddles a split boundary.
void drop_boundary_overlaps(Dataset& ds) {
  if (ds.stride <= 0 || ds.stride >= ds.T) return;
  std::vector<int64_t> order(ds.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ds.run[a] != ds.run[b] ? ds.run[a] < ds.run[b] : ds.pos[a] < ds.pos[b];
  });
  // Remember, per part, the position of the last kept window in the current run.
  int32_t cur_run = -1;
  int64_t last_pos[3] = {0, 0, 0};
  bool seen[3] = {false, false, false};
  for (int64_t i : order) {
    if (ds.run[i] != cur_run) {
      cur_run = ds.run[i];
      std::fill(seen, seen + 3, false);
    }
    const uint8_t s = ds.split[i];
    if (s == kDropped) continue;
    bool overlaps = false;
    for (int other = 0; other < 3; ++other)
      if (other != s && seen[other] && (ds.pos[i] - last_pos[other]) * ds.stride < ds.T) overlaps = true;
    if (overlaps) {
      ds.split[i] = kDropped;
    } else {
      last_pos[s] = ds.pos[i];
      seen[s] = true;
    }
  }
}

void require_parts(const Dataset& ds, const std::string& kind) {
  for (uint8_t s : {kTrain, kVal, kTest})
    if (ds.count(s) == 0)
      fail(std::string("split '") + kind + "' leaves the " + split_name(s) + " part empty (" +
           std::to_string(sorted_subjects(ds).size()) + " subjects, " + std::to_string(ds.size()) +
           " windows); choose other fractions or subject lists");
}

}  // namespace

void apply_split(Dataset& ds, const SplitOptions& o) {
  Rng rng(o.seed);
  json desc{{"kind", o.kind}, {"seed", o.seed}};
  if (o.kind == "chrono") {
    if (o.train <= 0 || o.val < 0 || o.train + o.val >= 1) fail("chrono split needs train > 0, val >= 0, train + val < 1");
    std::map<int32_t, std::vector<int64_t>> runs;
    for (int64_t i = 0; i < ds.size(); ++i) runs[ds.run[i]].push_back(i);
    for (auto& [r, idx] : runs) {
      std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return ds.pos[a] < ds.pos[b]; });
      const size_t n = idx.size();
      const size_t ntr = static_cast<size_t>(std::llround(o.train * n));
      const size_t nva = static_cast<size_t>(std::llround((o.train + o.val) * n));
      for (size_t k = 0; k < n; ++k) ds.split[idx[k]] = k < ntr ? kTrain : k < nva ? kVal : kTest;
    }
    drop_boundary_overlaps(ds);
    desc["train"] = o.train;
    desc["val"] = o.val;
  } else if (o.kind == "subject" || o.kind == "loso") {
    const auto subjects = sorted_subjects(ds);
    std::vector<int32_t> test = o.test_subjects, val = o.val_subjects;
    for (int32_t s : test)
      if (!std::binary_search(subjects.begin(), subjects.end(), s)) fail("test subject " + std::to_string(s) + " is not in the data");
    for (int32_t s : val)
      if (!std::binary_search(subjects.begin(), subjects.end(), s)) fail("validation subject " + std::to_string(s) + " is not in the data");
    if (o.kind == "loso") {
      if (o.fold < 0 || o.fold >= static_cast<int>(subjects.size()))
        fail("loso fold " + std::to_string(o.fold) + " is outside 0.." + std::to_string(subjects.size() - 1));
      test = {subjects[o.fold]};
      desc["fold"] = o.fold;
    } else if (test.empty()) {
      test = pick(subjects, o.test_fraction, rng);
    }
    std::vector<int32_t> rest;
    for (int32_t s : subjects)
      if (!std::count(test.begin(), test.end(), s)) rest.push_back(s);
    for (int32_t s : val)
      if (std::count(test.begin(), test.end(), s)) fail("subject " + std::to_string(s) + " is both a test and a validation subject");
    if (val.empty()) val = pick(rest, o.val_fraction, rng);
    for (int64_t i = 0; i < ds.size(); ++i) {
      const int32_t s = ds.subject[i];
      ds.split[i] = std::count(test.begin(), test.end(), s) ? kTest : std::count(val.begin(), val.end(), s) ? kVal : kTrain;
    }
    desc["test_subjects"] = test;
    desc["val_subjects"] = val;
  } else if (o.kind == "given") {
    if (!ds.info.value("given_split", false))
      fail(ds.name + " has no train/test split of its own; use --split chrono, subject or loso");
    for (auto s : ds.split)
      if (s == kVal) fail("the source already has a validation part; 'given' carves it from train");
    const bool by_subject = o.val_by == "subject" || (o.val_by == "auto" && ds.stride > 0 && ds.stride < ds.T);
    if (o.val_by != "subject" && o.val_by != "random" && o.val_by != "auto")
      fail("--val-by must be subject, random or auto, not '" + o.val_by + "'");
    if (by_subject) {
      auto val = o.val_subjects.empty() ? pick(sorted_subjects(ds, kTrain), o.val_fraction, rng) : o.val_subjects;
      for (int64_t i = 0; i < ds.size(); ++i)
        if (ds.split[i] == kTrain && std::count(val.begin(), val.end(), ds.subject[i])) ds.split[i] = kVal;
      desc["val_subjects"] = val;
      desc["val_by"] = "subject";
    } else {
      auto tr = ds.indices(kTrain);
      shuffle(tr, rng);
      const size_t k = static_cast<size_t>(std::llround(o.val_fraction * tr.size()));
      for (size_t j = 0; j < k; ++j) ds.split[tr[j]] = kVal;
      desc["val_by"] = "random windows";
    }
    desc["val_fraction"] = o.val_fraction;
  } else {
    fail("unknown split '" + o.kind + "' (use chrono, subject, loso or given)");
  }
  require_parts(ds, o.kind);
  desc["dropped_overlapping"] = ds.count(kDropped);
  ds.info["split"] = desc;
}

// ---- normalisation ---------------------------------------------------------------------------

void fit_normalize(Dataset& ds) {
  const int64_t M = ds.M, T = ds.T;
  std::vector<double> s(M, 0.0), sq(M, 0.0);
  int64_t n = 0;
  for (int64_t i = 0; i < ds.size(); ++i) {
    if (ds.split[i] != kTrain) continue;
    const float* w = ds.x.data() + i * T * M;
    for (int64_t t = 0; t < T; ++t)
      for (int64_t m = 0; m < M; ++m) {
        s[m] += w[t * M + m];
        sq[m] += double(w[t * M + m]) * w[t * M + m];
      }
    n += T;
  }
  if (n == 0) fail("cannot fit normalisation: no training windows");
  ds.mean.assign(M, 0.0f);
  ds.std.assign(M, 1.0f);
  for (int64_t m = 0; m < M; ++m) {
    const double mu = s[m] / n;
    const double var = std::max(0.0, sq[m] / n - mu * mu);
    ds.mean[m] = static_cast<float>(mu);
    ds.std[m] = var > 1e-12 ? static_cast<float>(std::sqrt(var)) : 1.0f;
  }
  normalize_windows(ds.x.data(), ds.size(), T, M, ds.mean, ds.std);
}

void normalize_windows(float* x, int64_t n, int64_t T, int64_t M, const std::vector<float>& mean,
                       const std::vector<float>& std) {
  if (static_cast<int64_t>(mean.size()) != M || static_cast<int64_t>(std.size()) != M)
    fail("normalisation statistics have " + std::to_string(mean.size()) + " axes, data has " + std::to_string(M));
  for (int64_t i = 0; i < n * T; ++i)
    for (int64_t m = 0; m < M; ++m) x[i * M + m] = (x[i * M + m] - mean[m]) / std[m];
}

// ---- summary ---------------------------------------------------------------------------------

std::string dataset_summary(const Dataset& ds) {
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: %lld windows of %lld x %lld", ds.name.c_str(), (long long)ds.size(),
                (long long)ds.T, (long long)ds.M);
  os << buf << " (";
  for (size_t m = 0; m < ds.axis_names.size(); ++m) os << (m ? ", " : "") << ds.axis_names[m];
  os << ")\n";
  std::snprintf(buf, sizeof buf, "%-22s %8s %8s %8s %8s\n", "class", "train", "val", "test", "dropped");
  os << buf;
  std::vector<std::array<int64_t, 4>> c(ds.class_names.size(), {0, 0, 0, 0});
  for (int64_t i = 0; i < ds.size(); ++i) c[ds.y[i]][ds.split[i] == kDropped ? 3 : ds.split[i]]++;
  std::array<int64_t, 4> tot{0, 0, 0, 0};
  for (size_t k = 0; k < c.size(); ++k) {
    std::snprintf(buf, sizeof buf, "%-22s %8lld %8lld %8lld %8lld\n", ds.class_names[k].c_str(), (long long)c[k][0],
                  (long long)c[k][1], (long long)c[k][2], (long long)c[k][3]);
    os << buf;
    for (int j = 0; j < 4; ++j) tot[j] += c[k][j];
  }
  std::snprintf(buf, sizeof buf, "%-22s %8lld %8lld %8lld %8lld\n", "total", (long long)tot[0], (long long)tot[1],
                (long long)tot[2], (long long)tot[3]);
  os << buf;
  for (uint8_t s : {kTrain, kVal, kTest}) {
    auto subj = sorted_subjects(ds, s);
    os << "subjects in " << split_name(s) << ": " << subj.size();
    if (subj.size() <= 12) {
      os << " (";
      for (size_t k = 0; k < subj.size(); ++k) os << (k ? " " : "") << subj[k];
      os << ")";
    }
    os << "\n";
  }
  return os.str();
}

}  // namespace harvit::data
