#include "train/cv.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "nn/checkpoint.h"
#include "train/report.h"

namespace harvit::train {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string fmt(const char* f, double v) {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string join(const std::vector<int32_t>& v, const char* sep = ",") {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
  return s;
}

void shuffle(std::vector<int32_t>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / v.size();
}
// Sample standard deviation (n - 1), 0 for fewer than two values.
double sd_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / (v.size() - 1));
}

}  // namespace

// ---- folds ----------------------------------------------------------------------------------------

std::vector<int32_t> cv_subjects(const data::Dataset& ds) {
  std::set<int32_t> s;
  for (int64_t i = 0; i < ds.size(); ++i)
    if (ds.split[i] != data::kDropped) s.insert(ds.subject[i]);
  return {s.begin(), s.end()};
}

std::vector<std::vector<int32_t>> assign_folds(const std::vector<int32_t>& subjects, const std::string& folds,
                                               uint64_t seed) {
  std::vector<int32_t> sorted = subjects;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) fail("cv: subject ids repeat");
  const int64_t n = static_cast<int64_t>(sorted.size());
  std::vector<std::vector<int32_t>> out;
  if (folds == "loso") {
    if (n < 3)
      fail("--folds loso: the data has " + std::to_string(n) +
           " subjects; every fold needs a test, a validation and a training subject (3 at least)");
    for (int32_t s : sorted) out.push_back({s});
    return out;
  }
  int64_t K = 0;
  size_t used = 0;
  try {
    K = std::stoll(folds, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != folds.size()) fail("--folds must be loso or a number of folds, not '" + folds + "'");
  if (K < 2) fail("--folds " + folds + ": cross-validation needs at least 2 folds");
  if (K > n)
    fail("--folds " + folds + ": more folds than subjects (the data has " + std::to_string(n) +
         " subjects; --folds loso gives one fold per subject)");
  std::vector<int32_t> order = sorted;
  Rng rng(seed);
  shuffle(order, rng);
  // Fold k takes n / K subjects, the first n % K folds one more.
  for (int64_t k = 0, at = 0; k < K; ++k) {
    const int64_t size = n / K + (k < n % K);
    std::vector<int32_t> f(order.begin() + at, order.begin() + at + size);
    std::sort(f.begin(), f.end());
    out.push_back(std::move(f));
    at += size;
  }
  return out;
}

FoldSpec make_fold(int fold, const std::vector<int32_t>& subjects, const std::vector<int32_t>& test,
                   double val_fraction, uint64_t seed) {
  if (!(val_fraction > 0 && val_fraction < 1)) fail("--val-fraction must be in (0, 1), not " + fmt("%g", val_fraction));
  FoldSpec f;
  f.fold = fold;
  f.test = test;
  std::sort(f.test.begin(), f.test.end());
  std::vector<int32_t> rest;
  for (int32_t s : subjects)
    if (!std::binary_search(f.test.begin(), f.test.end(), s)) rest.push_back(s);
  std::sort(rest.begin(), rest.end());
  const int64_t n = static_cast<int64_t>(rest.size());
  const int64_t n_val = std::max<int64_t>(1, std::llround(val_fraction * n));
  if (n - n_val < 1)
    fail("fold " + std::to_string(fold) + ": " + std::to_string(n) +
         " subjects outside the test part leave none for training after " + std::to_string(n_val) + " for validation");
  // Each fold's own stream: the same validation subjects whichever process runs the fold.
  Rng rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(fold));
  shuffle(rest, rng);
  f.val.assign(rest.begin(), rest.begin() + n_val);
  f.train.assign(rest.begin() + n_val, rest.end());
  std::sort(f.val.begin(), f.val.end());
  std::sort(f.train.begin(), f.train.end());
  return f;
}

std::vector<FoldSpec> make_folds(const data::Dataset& ds, const CvOptions& opt) {
  const auto subjects = cv_subjects(ds);
  const auto tests = assign_folds(subjects, opt.folds, opt.fold_seed);
  std::vector<FoldSpec> out;
  for (size_t k = 0; k < tests.size(); ++k)
    out.push_back(make_fold(static_cast<int>(k + 1), subjects, tests[k], opt.val_fraction, opt.fold_seed));
  return out;
}

data::Dataset fold_dataset(const data::Dataset& ds, const FoldSpec& f) {
  data::Dataset d = ds;
  const int64_t T = d.T, M = d.M, N = d.size();
  if (!d.mean.empty()) {  // back to raw units: the file's statistics were fitted on other subjects
    if (static_cast<int64_t>(d.mean.size()) != M || static_cast<int64_t>(d.std.size()) != M)
      fail(ds.name + ": normalisation statistics have " + std::to_string(d.mean.size()) + " axes, the data " +
           std::to_string(M));
    for (int64_t i = 0; i < N * T; ++i)
      for (int64_t m = 0; m < M; ++m) d.x[i * M + m] = d.x[i * M + m] * d.std[m] + d.mean[m];
  }
  const auto in = [](const std::vector<int32_t>& v, int32_t s) { return std::binary_search(v.begin(), v.end(), s); };
  for (int64_t i = 0; i < N; ++i) {
    if (d.split[i] == data::kDropped) continue;
    const int32_t s = d.subject[i];
    d.split[i] = in(f.test, s) ? data::kTest : in(f.val, s) ? data::kVal : in(f.train, s) ? data::kTrain : data::kDropped;
  }
  for (uint8_t part : {data::kTrain, data::kVal, data::kTest})
    if (d.count(part) == 0)
      fail(ds.name + ": fold " + std::to_string(f.fold) + " has no " + data::split_name(part) + " windows");
  d.mean.clear();
  d.std.clear();
  data::fit_normalize(d);
  d.name = ds.name + " cv fold " + std::to_string(f.fold);
  d.info["split"] = {{"kind", "cv"}, {"fold", f.fold}, {"test_subjects", f.test}, {"val_subjects", f.val},
                     {"train_subjects", f.train}};
  return d;
}

json fold_identity(const data::Dataset& ds, const CvOptions& cv, const FoldSpec& f, const json& model_cfg,
                   const TrainOptions& opt) {
  char hash[32];
  std::snprintf(hash, sizeof hash, "%016llx",
                static_cast<unsigned long long>(fnv1a(ds.split, fnv1a(ds.subject, fnv1a(ds.y)))));
  return {{"data", {{"name", ds.name}, {"windows", ds.size()}, {"T", ds.T}, {"M", ds.M}, {"hash", hash}}},
          {"cv", {{"folds", cv.folds}, {"val_fraction", cv.val_fraction}, {"fold_seed", cv.fold_seed}}},
          {"fold", f.fold},
          {"test_subjects", f.test},
          {"val_subjects", f.val},
          {"model", model_cfg},
          {"options", opt.to_json()}};
}

// ---- results --------------------------------------------------------------------------------------

int64_t SubjectResult::correct() const {
  const auto C = static_cast<int64_t>(std::llround(std::sqrt(double(confusion.size()))));
  int64_t c = 0;
  for (int64_t k = 0; k < C; ++k) c += confusion[k * C + k];
  return c;
}
int64_t SubjectResult::total() const {
  int64_t t = 0;
  for (int64_t v : confusion) t += v;
  return t;
}

json FoldResult::to_json() const {
  json subj = json::array();
  for (const auto& s : subjects)
    subj.push_back({{"subject", s.subject}, {"correct", s.correct()}, {"total", s.total()}, {"accuracy", s.accuracy()},
                    {"confusion", s.confusion}});
  return {{"fold", fold},           {"test_subjects", test_subjects}, {"val_subjects", val_subjects},
          {"train_subjects", train_subjects}, {"train_windows", train_windows}, {"val_windows", val_windows},
          {"test_windows", test_windows}, {"classes", C},             {"confusion", confusion},
          {"accuracy", accuracy},   {"macro_f1", macro_f1},           {"best_epoch", best_epoch},
          {"best_val_acc", best_val_acc}, {"seconds", seconds},       {"threads", threads},
          {"subjects", subj},       {"identity", identity}};
}

FoldResult FoldResult::from_json(const json& j) {
  FoldResult r;
  r.fold = j.at("fold");
  r.test_subjects = j.at("test_subjects").get<std::vector<int32_t>>();
  r.val_subjects = j.at("val_subjects").get<std::vector<int32_t>>();
  r.train_subjects = j.at("train_subjects");
  r.train_windows = j.at("train_windows");
  r.val_windows = j.at("val_windows");
  r.test_windows = j.at("test_windows");
  r.C = j.at("classes");
  r.confusion = j.at("confusion").get<std::vector<int64_t>>();
  r.accuracy = j.at("accuracy");
  r.macro_f1 = j.at("macro_f1");
  r.best_epoch = j.at("best_epoch");
  r.best_val_acc = j.at("best_val_acc");
  r.seconds = j.at("seconds");
  r.threads = j.value("threads", 0);
  for (const auto& s : j.at("subjects")) {
    SubjectResult sr;
    sr.subject = s.at("subject");
    sr.fold = r.fold;
    sr.confusion = s.at("confusion").get<std::vector<int64_t>>();
    r.subjects.push_back(std::move(sr));
  }
  r.identity = j.value("identity", json());
  if (static_cast<int64_t>(r.confusion.size()) != r.C * r.C) fail("fold result: confusion matrix is not classes x classes");
  for (const auto& s : r.subjects)
    if (s.confusion.size() != r.confusion.size()) fail("fold result: subject " + std::to_string(s.subject) + "'s confusion matrix has the wrong size");
  return r;
}

std::string fold_dir(const std::string& out_dir, int fold) {
  char b[32];
  std::snprintf(b, sizeof b, "fold-%02d", fold);
  return (fs::path(out_dir) / b).string();
}
std::string fold_result_path(const std::string& dir) { return (fs::path(dir) / "result.json").string(); }
std::string fold_predictions_path(const std::string& dir) {
  return (fs::path(dir) / "predictions.safetensors").string();
}

namespace {
// A fold's result.json as JSON; `hint` ends the message of a file that is not JSON.
json read_result_json(const std::string& path, const std::string& hint) {
  std::ifstream in(path);
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    fail(path + ": not a fold result (" + e.what() + ")" + hint);
  }
}
// The keys of `want` whose values `have` lacks or differs in, comma-separated.
std::string differing_keys(const json& want, const json& have) {
  std::string what;
  for (auto it = want.begin(); it != want.end(); ++it)
    if (!have.contains(it.key()) || have[it.key()] != it.value()) what += (what.empty() ? "" : ", ") + it.key();
  return what;
}
}  // namespace

std::optional<FoldResult> load_fold_result(const std::string& dir, const json& identity) {
  const std::string path = fold_result_path(dir);
  if (!fs::exists(path)) return std::nullopt;
  const json j = read_result_json(path, "; remove it to train the fold again");
  const json have = j.value("identity", json());
  if (have != identity) {
    const std::string what = differing_keys(identity, have);
    fail(path + ": belongs to another cross-validation (" + (what.empty() ? std::string("identity") : what) +
         " differ); use another --out, or remove the fold folders to start again");
  }
  try {
    return FoldResult::from_json(j);
  } catch (const nlohmann::json::exception& e) {
    fail(path + ": incomplete fold result (" + e.what() + "); remove it to train the fold again");
  }
}

namespace {
// A fold's result from its test windows' labels (in ds.indices(kTest) order): the parts, window
// counts, confusion matrix, accuracy, macro-F1 and per-subject matrices; the caller adds the
// selection (best epoch, validation accuracy), identity and time.
FoldResult test_result(const data::Dataset& ds, const FoldSpec& f, const std::vector<int32_t>& truth,
                       const std::vector<int32_t>& pred, int64_t C) {
  const Metrics m = compute_metrics(truth, pred, C);
  FoldResult r;
  r.fold = f.fold;
  r.test_subjects = f.test;
  r.val_subjects = f.val;
  r.train_subjects = static_cast<int64_t>(f.train.size());
  r.train_windows = ds.count(data::kTrain);
  r.val_windows = ds.count(data::kVal);
  r.test_windows = ds.count(data::kTest);
  r.C = C;
  r.confusion = m.confusion;
  r.accuracy = m.accuracy;
  r.macro_f1 = m.f1_macro;
  r.threads = num_threads();
  std::map<int32_t, size_t> at;
  for (int32_t subj : f.test) {
    at[subj] = r.subjects.size();
    r.subjects.push_back({subj, f.fold, std::vector<int64_t>(C * C, 0)});
  }
  const auto idx = ds.indices(data::kTest);
  for (size_t i = 0; i < idx.size(); ++i) r.subjects[at.at(ds.subject[idx[i]])].confusion[truth[i] * C + pred[i]]++;
  return r;
}

// ---- a fold's predictions file ---------------------------------------------------------------------
// Tensors val.probs / test.probs (n, C) F32, val.window / test.window (n) I32 (the windows' indices in
// the prepared file, which a fold's data keeps), val.label / test.label (n) I32; metadata: format, the
// fold's identity, the selected epoch and validation accuracy, the class names.
constexpr const char* kPredictionsFormat = "harvit fold predictions 1";
constexpr std::pair<const char*, uint8_t> kPredictedParts[] = {{"val", data::kVal}, {"test", data::kTest}};

void write_fold_predictions(const std::string& dir, const data::Dataset& ds, const Predictions& val,
                            const Predictions& test, int64_t C, const FoldResult& r) {
  const std::string path = fold_predictions_path(dir);
  SafetensorsWriter w;
  for (const auto& [part, split] : kPredictedParts) {
    const Predictions& p = split == data::kVal ? val : test;
    const auto idx = ds.indices(split);
    const auto n = static_cast<int64_t>(idx.size());
    if (static_cast<int64_t>(p.probs.size()) != n * C || static_cast<int64_t>(p.truth.size()) != n)
      fail(path + ": " + part + " predictions of " + std::to_string(p.truth.size()) + " windows x " +
           std::to_string(p.probs.size()) + " probabilities; the fold has " + std::to_string(n) + " windows x " +
           std::to_string(C) + " classes");
    if (ds.size() > INT32_MAX) fail(path + ": the data has more than 2^31 windows");
    const std::vector<int32_t> window(idx.begin(), idx.end());
    const std::string name = part;
    w.add_f32(name + ".probs", {n, C}, p.probs.data());
    w.add_i32(name + ".window", {n}, window.data());
    w.add_i32(name + ".label", {n}, p.truth.data());
  }
  w.set_metadata("format", kPredictionsFormat);
  w.set_metadata("identity", r.identity.dump());
  w.set_metadata("best_epoch", std::to_string(r.best_epoch));
  w.set_metadata("best_val_acc", fmt("%.17g", r.best_val_acc));
  w.set_metadata("classes", json(ds.class_names).dump());
  w.set_metadata("normalization", json{{"mean", ds.mean}, {"std", ds.std}}.dump());
  w.write(path);
}

// Whether `nm` ({"mean": [...], "std": [...]}, a checkpoint's or a predictions file's) holds the
// fold's normalisation statistics, fitted on its training windows: a model trained on the fold
// carries them, one trained on other data (or signal values) does not.
bool fold_normalisation(const json& nm, const data::Dataset& ds) {
  if (!nm.is_object() || !nm.contains("mean") || !nm.contains("std")) return false;
  const auto mean = nm["mean"].get<std::vector<double>>(), sd = nm["std"].get<std::vector<double>>();
  if (mean.size() != ds.mean.size() || sd.size() != ds.std.size()) return false;
  for (size_t i = 0; i < mean.size(); ++i)
    if (std::fabs(mean[i] - ds.mean[i]) > 1e-5 * (1 + std::fabs(mean[i])) ||
        std::fabs(sd[i] - ds.std[i]) > 1e-5 * (1 + std::fabs(sd[i])))
      return false;
  return true;
}

// The windows' true labels and, from their (n, C) class probabilities, the most probable class of
// each (the first maximum, as predict_split picks).
void labels_of(const data::Dataset& ds, const std::vector<int64_t>& idx, const std::vector<float>& probs, int64_t C,
               std::vector<int32_t>& truth, std::vector<int32_t>& pred) {
  for (size_t i = 0; i < idx.size(); ++i) {
    truth.push_back(ds.y[idx[i]]);
    const float* pr = probs.data() + i * C;
    pred.push_back(static_cast<int32_t>(std::max_element(pr, pr + C) - pr));
  }
}

// A member's class probabilities for the fold's validation and test windows, (n, C) each.
struct PartProbs {
  std::vector<float> val, test;
};

PartProbs probs_from_predictions(const MemberFold& mem, const data::Dataset& ds, const FoldSpec& f, int64_t C) {
  const std::string& path = mem.predictions;
  // What to do about a file that does not fit: the fold's model can predict instead when it is there.
  const std::string remedy = fs::exists(mem.checkpoint) ? "; remove it to predict with " + mem.checkpoint
                                                        : "; train the fold again (remove its folder) to replace it";
  const SafetensorsFile st = SafetensorsFile::load(path);
  const auto meta = [&](const char* k) {
    const auto it = st.metadata().find(k);
    return it == st.metadata().end() ? std::string() : it->second;
  };
  if (meta("format") != kPredictionsFormat)
    fail(path + ": not a harvit fold predictions file (format '" + meta("format") + "')" + remedy);
  const json id = json::parse(meta("identity"), nullptr, false);
  if (!id.is_object()) fail(path + ": its fold identity (metadata \"identity\") is missing or not JSON" + remedy);
  if (id != mem.result.identity || meta("best_epoch") != std::to_string(mem.result.best_epoch) ||
      meta("best_val_acc") != fmt("%.17g", mem.result.best_val_acc))
    fail(path + ": not the predictions of the model its fold's result.json reports (best epoch " +
         std::to_string(mem.result.best_epoch) + "): was one of them replaced?" + remedy);
  if (meta("classes") != json(ds.class_names).dump()) fail(path + ": its class names are not the data's" + remedy);
  PartProbs out;
  for (const auto& [part, split] : kPredictedParts) {
    const std::string name = part;
    static constexpr std::pair<const char*, const char*> kTensors[] = {{".probs", "F32"}, {".window", "I32"}, {".label", "I32"}};
    for (const auto& [t, dtype] : kTensors) {
      if (!st.has(name + t)) fail(path + ": no tensor " + name + t + remedy);
      if (st.entry(name + t).dtype != dtype)
        fail(path + ": tensor " + name + t + " is " + st.entry(name + t).dtype + ", not " + dtype + remedy);
    }
    const auto idx = ds.indices(split);
    const auto n = static_cast<int64_t>(idx.size());
    const auto window = st.ints(name + ".window"), label = st.ints(name + ".label");
    bool same = static_cast<int64_t>(window.size()) == n && static_cast<int64_t>(label.size()) == n;
    for (int64_t i = 0; same && i < n; ++i) same = window[i] == idx[i] && label[i] == ds.y[idx[i]];
    if (!same)
      fail(path + ": not fold " + std::to_string(f.fold) + "'s " + name + " windows (" + std::to_string(window.size()) +
           " predicted, the fold has " + std::to_string(n) + "; or other windows or labels)");
    if (st.entry(name + ".probs").shape != Shape{n, C})
      fail(path + ": " + name + ".probs is not (" + std::to_string(n) + ", " + std::to_string(C) + ")");
    (split == data::kVal ? out.val : out.test) = st.floats(name + ".probs");
  }
  if (!fold_normalisation(json::parse(meta("normalization"), nullptr, false), ds))
    fail(path + ": its normalisation statistics are not those of fold " + std::to_string(f.fold) +
         "'s training windows (the predictions of a model of other data)");
  // The test windows' labels from these probabilities must be the confusion matrix result.json reports.
  std::vector<int32_t> truth, pred;
  labels_of(ds, ds.indices(data::kTest), out.test, C, truth, pred);
  if (compute_metrics(truth, pred, C).confusion != mem.result.confusion)
    fail(path + ": its test predictions are not the confusion matrix its fold's result.json reports" + remedy);
  return out;
}

PartProbs probs_from_checkpoint(const MemberFold& mem, const data::Dataset& ds, const FoldSpec& f, int64_t C) {
  const auto ck = nn::load_checkpoint(mem.checkpoint);
  const nn::Model& m = *ck.model;
  if (m.T() != ds.T || m.M() != ds.M || m.C() != C)
    fail(mem.checkpoint + ": a model for windows of " + std::to_string(m.T()) + " x " + std::to_string(m.M()) + " and " +
         std::to_string(m.C()) + " classes; the fold's are " + std::to_string(ds.T) + " x " + std::to_string(ds.M) +
         " and " + std::to_string(C));
  if (!ck.meta.class_names.empty() && ck.meta.class_names != ds.class_names)
    fail(mem.checkpoint + ": its class names are not the data's");
  // The model the fold's result.json reports: the epoch and validation accuracy it was saved at.
  const json& ex = ck.meta.extra;
  if (!ex.is_object() || ex.value("epoch", -2) != mem.result.best_epoch ||
      std::fabs(ex.value("val_acc", -2.0) - mem.result.best_val_acc) > 1e-12)
    fail(mem.checkpoint + ": not the model its fold's result.json reports (best epoch " +
         std::to_string(mem.result.best_epoch) + "): was it replaced?");
  if (!fold_normalisation(ck.meta.normalization, ds))
    fail(mem.checkpoint + ": its normalisation statistics are not those of fold " + std::to_string(f.fold) +
         "'s training windows (a model of another fold or data)");
  return {predict_split(*ck.model, ds, data::kVal).probs, predict_split(*ck.model, ds, data::kTest).probs};
}
}  // namespace

// ---- one fold -------------------------------------------------------------------------------------

FoldResult run_fold(const data::Dataset& ds, const FoldSpec& f, const json& model_cfg, const TrainOptions& opt_in,
                    const std::string& dir, const json& identity, const FoldLog& log, const std::function<bool()>& stop) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  TrainOptions opt = opt_in;
  opt.out_dir = dir;
  // A fold stopped before its end (Ctrl-C, a killed process) goes on from its last saved state:
  // the end of its last whole epoch, or the step Ctrl-C stopped it at. (A ViT fold on UCI-HAR
  // takes ~35 minutes of one core of an idle 2-core VM here.) The state's identity check refuses another run's files.
  opt.resume = fs::exists(last_checkpoint_path(dir));
  fs::create_directories(dir);
  fs::remove(fold_result_path(dir));  // a fold that fails now leaves no result behind
  fs::remove(fold_predictions_path(dir));
  TrainSession s(ds, model_cfg, opt);  // one process: folds, not batches, are spread over processes
  // A resumed fold's time counts the epochs its earlier runs finished (their records' seconds) as
  // well as this run's; without them a fold resumed in its last epoch would report minutes, not hours.
  double earlier_seconds = 0;
  for (const EpochRecord& e : s.state.history) earlier_seconds += e.seconds;
  const std::string tag = "fold " + std::to_string(f.fold);
  if (opt.resume)
    say(tag + ": resuming from " + last_checkpoint_path(dir) + " at epoch " + std::to_string(s.state.epoch + 1) +
        ", step " + std::to_string(s.state.step));
  say(tag + ": test subjects " + join(f.test, ", ") + "; validation " + join(f.val, ", ") + "; " +
      std::to_string(s.train_idx.size()) + " train / " + std::to_string(ds.count(data::kVal)) + " val / " +
      std::to_string(ds.count(data::kTest)) + " test windows, " + s.model->kind() + ", " + std::to_string(opt.epochs) +
      " epochs, " + std::to_string(num_threads()) + " threads");
  const nn::ParamSlab& p = s.model->params();
  std::vector<float> best(p.values(), p.values() + p.count());
  if (s.state.best_epoch >= 0) {  // resumed: the best weights so far are in the best checkpoint
    const auto ck = nn::load_checkpoint(best_checkpoint_path(dir));
    if (ck.model->params().count() != p.count())
      fail(best_checkpoint_path(dir) + ": not this fold's model (remove the fold folder to train it again)");
    std::copy(ck.model->params().values(), ck.model->params().values() + p.count(), best.begin());
  }
  while (s.state.epoch < opt.epochs) {
    const EpochStats es = train_epoch(s, stop);
    if (!es.complete) {
      save_train_state(dir, s.state, *s.model, s.adam, s.id);
      fail(tag + ": interrupted at epoch " + std::to_string(s.state.epoch + 1) + ", step " +
           std::to_string(s.state.step) + "; run again to continue it");
    }
    const EpochEnd end = finish_epoch(s, es);  // validation, selection, best/last/history files
    const EpochRecord& rec = end.rec;
    const bool is_best = end.best;
    if (is_best) std::copy(p.values(), p.values() + p.count(), best.begin());
    char line[200];
    std::snprintf(line, sizeof line, "%s: epoch %3d/%d  train loss %.4f acc %.4f  val loss %.4f acc %.4f%s  %.1f s",
                  tag.c_str(), rec.epoch, opt.epochs, rec.train_loss, rec.train_acc, rec.val_loss, rec.val_acc,
                  is_best ? " *" : "  ", rec.seconds);
    say(line);
  }
  write_history(dir, s.state, s.id);
  // The selected weights, then the test subjects (seen here for the first time).
  std::copy(best.begin(), best.end(), s.model->params().values());
  s.model->params_changed();
  const Predictions pv = predict_split(*s.model, ds, data::kVal), pr = predict_split(*s.model, ds, data::kTest);
  FoldResult r = test_result(ds, f, pr.truth, pr.pred, s.model->C());
  r.best_epoch = s.state.best_epoch;
  r.best_val_acc = s.state.best_val_acc;
  r.identity = identity;
  r.seconds = earlier_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  write_fold_predictions(dir, ds, pv, pr, s.model->C(), r);
  write_file_atomic(fold_result_path(dir), r.to_json().dump(1));
  // the result and predictions are what a finished fold keeps (the UCI-HAR ViT's state is ~130 MB)
  remove_train_state(dir);
  char line[200];
  std::snprintf(line, sizeof line, "%s: test accuracy %.4f, macro-F1 %.4f (best epoch %d, val acc %.4f), %.0f s", tag.c_str(),
                r.accuracy, r.macro_f1, r.best_epoch, r.best_val_acc, r.seconds);
  say(line);
  return r;
}

// ---- ensembles -------------------------------------------------------------------------------------

json fold_subjects_identity(const json& identity) {
  json out = json::object();
  for (const char* k : {"data", "cv", "fold", "test_subjects", "val_subjects"})
    if (identity.is_object() && identity.contains(k)) out[k] = identity[k];
  return out;
}

std::optional<MemberFold> load_member_fold(const std::string& run_dir, int fold, const json& subjects) {
  const std::string dir = fold_dir(run_dir, fold), path = fold_result_path(dir);
  if (!fs::exists(path)) return std::nullopt;
  const json j = read_result_json(path, "");
  const json have = fold_subjects_identity(j.value("identity", json()));
  if (have != subjects) {
    fail(path + ": another fold than this one (" + differing_keys(subjects, have) +
         " differ): an ensemble combines runs of the same data with the same --folds, --val-fraction and --fold-seed");
  }
  MemberFold m;
  m.run = run_dir;
  m.checkpoint = (fs::path(dir) / "best.safetensors").string();
  try {
    m.result = FoldResult::from_json(j);
  } catch (const nlohmann::json::exception& e) {
    fail(path + ": incomplete fold result (" + e.what() + ")");
  }
  if (fs::exists(fold_predictions_path(dir))) m.predictions = fold_predictions_path(dir);
  if (m.predictions.empty() && !fs::exists(m.checkpoint))
    fail(m.checkpoint + ": missing, and so is " + fold_predictions_path(dir) +
         " (the fold's result is there, neither its selected model nor its predictions are)");
  return m;
}

FoldResult combine_fold(const data::Dataset& ds, const FoldSpec& f, const std::vector<MemberFold>& members,
                        const json& identity) {
  const auto t0 = std::chrono::steady_clock::now();
  if (members.empty()) fail("fold " + std::to_string(f.fold) + ": an ensemble needs at least one member");
  const int64_t C = static_cast<int64_t>(ds.class_names.size());
  const auto vidx = ds.indices(data::kVal), tidx = ds.indices(data::kTest);
  std::vector<float> pval(vidx.size() * C, 0.0f), ptest(tidx.size() * C, 0.0f);
  for (const auto& mem : members) {
    const PartProbs p = mem.predictions.empty() ? probs_from_checkpoint(mem, ds, f, C) : probs_from_predictions(mem, ds, f, C);
    for (size_t i = 0; i < pval.size(); ++i) pval[i] += p.val[i] / members.size();
    for (size_t i = 0; i < ptest.size(); ++i) ptest[i] += p.test[i] / members.size();
  }
  std::vector<int32_t> vt, vp, tt, tp;
  labels_of(ds, vidx, pval, C, vt, vp);
  labels_of(ds, tidx, ptest, C, tt, tp);
  FoldResult r = test_result(ds, f, tt, tp, C);
  r.best_epoch = -1;
  r.best_val_acc = compute_metrics(vt, vp, C).accuracy;
  r.identity = identity;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// ---- the aggregate --------------------------------------------------------------------------------

CvSummary aggregate(std::vector<FoldResult> folds, int total_folds) {
  CvSummary s;
  if (folds.empty()) fail("cv: no fold results to aggregate");
  std::sort(folds.begin(), folds.end(), [](const FoldResult& a, const FoldResult& b) { return a.fold < b.fold; });
  const int64_t C = folds[0].C;
  std::vector<double> acc, f1, val;
  std::vector<int64_t> pooled(C * C, 0);
  std::set<int32_t> seen;
  for (const auto& f : folds) {
    if (f.C != C) fail("cv: fold " + std::to_string(f.fold) + " has " + std::to_string(f.C) + " classes, fold " +
                       std::to_string(folds[0].fold) + " " + std::to_string(C));
    acc.push_back(f.accuracy);
    f1.push_back(f.macro_f1);
    val.push_back(f.best_val_acc);
    for (int64_t i = 0; i < C * C; ++i) pooled[i] += f.confusion[i];
    for (const auto& sr : f.subjects) {
      if (!seen.insert(sr.subject).second) fail("cv: subject " + std::to_string(sr.subject) + " is tested in two folds");
      s.subjects.push_back(sr);
    }
  }
  s.acc_mean = mean_of(acc), s.acc_sd = sd_of(acc);
  s.f1_mean = mean_of(f1), s.f1_sd = sd_of(f1);
  s.val_mean = mean_of(val), s.val_sd = sd_of(val);
  std::vector<int32_t> truth, pred;  // the pooled matrix as labels, for compute_metrics
  for (int64_t t = 0; t < C; ++t)
    for (int64_t p = 0; p < C; ++p) {
      truth.insert(truth.end(), pooled[t * C + p], static_cast<int32_t>(t));
      pred.insert(pred.end(), pooled[t * C + p], static_cast<int32_t>(p));
    }
  s.pooled = compute_metrics(truth, pred, C);
  std::stable_sort(s.subjects.begin(), s.subjects.end(), [](const SubjectResult& a, const SubjectResult& b) {
    return a.accuracy() != b.accuracy() ? a.accuracy() < b.accuracy() : a.subject < b.subject;
  });
  std::vector<double> sacc;
  for (const auto& sr : s.subjects)
    if (sr.total()) sacc.push_back(sr.accuracy());
  s.subject_acc_mean = mean_of(sacc), s.subject_acc_sd = sd_of(sacc);
  s.folds = std::move(folds);
  s.total_folds = total_folds;
  return s;
}

json CvSummary::to_json(const std::vector<std::string>& class_names) const {
  json fj = json::array(), sj = json::array();
  for (const auto& f : folds) {
    json j = f.to_json();
    j.erase("identity");
    j.erase("subjects");
    fj.push_back(j);
  }
  for (const auto& sr : subjects)
    sj.push_back({{"subject", sr.subject}, {"fold", sr.fold}, {"correct", sr.correct()}, {"total", sr.total()},
                  {"accuracy", sr.accuracy()}, {"confusion", sr.confusion}});
  return {{"folds_total", total_folds},
          {"folds_done", folds.size()},
          {"accuracy", {{"mean", acc_mean}, {"sd", acc_sd}}},
          {"macro_f1", {{"mean", f1_mean}, {"sd", f1_sd}}},
          {"val_accuracy", {{"mean", val_mean}, {"sd", val_sd}}},
          {"pooled", pooled.to_json(class_names)},
          {"subject_accuracy", {{"mean", subject_acc_mean}, {"sd", subject_acc_sd}}},
          {"folds", fj},
          {"subjects", sj}};
}

// ---- the report -----------------------------------------------------------------------------------

namespace {

// The most frequent error of a confusion matrix: "Upstairs -> Walking (12)", or "-" without errors.
std::string main_error(const std::vector<int64_t>& cm, const std::vector<std::string>& names) {
  const int64_t C = static_cast<int64_t>(names.size());
  int64_t best = 0, bt = -1, bp = -1;
  for (int64_t t = 0; t < C; ++t)
    for (int64_t p = 0; p < C; ++p)
      if (t != p && cm[t * C + p] > best) best = cm[t * C + p], bt = t, bp = p;
  return bt < 0 ? "-" : names[bt] + " -> " + names[bp] + " (" + std::to_string(best) + ")";
}

void plot_per_subject(const CvSummary& s, const std::string& png, const std::string& title) {
  const std::string dat = png + ".dat";
  {
    std::ofstream d(dat);
    int i = 0;
    for (const auto& sr : s.subjects) d << i++ << " " << sr.subject << " " << sr.accuracy() << "\n";
  }
  const int n = static_cast<int>(s.subjects.size());
  std::ostringstream g;
  g << "set terminal pngcairo size " << std::max(640, 28 * n + 200) << ",420 font 'Sans,10'\nset output '" << png << "'\n"
    << "set title \"" << gnuplot_escape(title) << "\"\nset xlabel 'subject (hardest first)'\nset ylabel 'test accuracy'\n"
    << "set yrange [0:1.05]\nset xrange [-0.6:" << n - 0.4 << "]\nset grid ytics\nset boxwidth 0.7\n"
    << "set style fill solid 0.8 border -1\nset xtics rotate by -60 font ',8'\nset key top left box opaque\n"
    << "plot '" << dat << "' using 1:3:xtic(2) with boxes lc rgb '#4878a8' title 'per-subject accuracy', "
    << s.pooled.accuracy << " with lines lw 2 dt 2 lc rgb '#c03030' title 'pooled accuracy "
    << fmt("%.3f", s.pooled.accuracy) << "'\n";
  run_gnuplot(g.str(), png);
  fs::remove(dat);
}

}  // namespace

std::string write_cv_report(const std::string& dir, const CvSummary& s, const CvReportInfo& info) {
  fs::create_directories(dir);
  const auto& names = info.class_names;
  const int64_t C = static_cast<int64_t>(names.size());
  if (C != s.pooled.C) fail("cv report: " + std::to_string(C) + " class names for " + std::to_string(s.pooled.C) + " classes");
  json j = s.to_json(names);
  j["command"] = info.command;
  j["data"] = info.data;
  j["model"] = info.model_config;
  j["options"] = info.options;
  j["cv"] = info.cv;
  j["classes"] = names;
  j["wall_seconds"] = info.wall_seconds;
  write_file_atomic(dir + "/cv.json", j.dump(2));
  plot_per_subject(s, dir + "/per_subject.png", info.title + ": per-subject test accuracy");
  plot_confusion(s.pooled, names, dir + "/confusion.png", info.title + ": pooled confusion matrix (row-normalised)");

  double fold_seconds = 0;
  for (const auto& f : s.folds) fold_seconds += f.seconds;
  std::ostringstream md;
  md << "# " << info.title << "\n\n"
     << "Subject-wise cross-validation of `" << info.model << "` on `" << info.data << "`: " << s.folds.size() << " of "
     << s.total_folds << " folds";
  if (static_cast<int>(s.folds.size()) < s.total_folds) {
    std::vector<int32_t> missing;
    std::set<int> have;
    for (const auto& f : s.folds) have.insert(f.fold);
    for (int k = 1; k <= s.total_folds; ++k)
      if (!have.count(k)) missing.push_back(k);
    md << " (missing: " << join(missing, ", ") << "; the figures below cover the folds done)";
  }
  md << ". "
     << (info.method.empty() ? "Each fold trains on its training subjects, selects the epoch on its validation subjects "
                               "and tests on its test subjects, which no statistic of the fold saw (normalisation "
                               "included)."
                             : info.method)
     << "\n\n"
     << "| | accuracy | macro-F1 |\n|---|---|---|\n"
     << "| mean +- sd over folds | **" << fmt("%.4f", s.acc_mean) << " +- " << fmt("%.4f", s.acc_sd) << "** | **"
     << fmt("%.4f", s.f1_mean) << " +- " << fmt("%.4f", s.f1_sd) << "** |\n"
     << "| pooled (all " << s.pooled.n << " test windows) | " << fmt("%.4f", s.pooled.accuracy) << " | "
     << fmt("%.4f", s.pooled.f1_macro) << " |\n"
     << "| per subject, mean +- sd over " << s.subjects.size() << " subjects | " << fmt("%.4f", s.subject_acc_mean)
     << " +- " << fmt("%.4f", s.subject_acc_sd) << " | |\n"
     << "| validation subjects (" << (info.method.empty() ? "selected epochs" : "the members' selected models combined")
     << "), mean +- sd over folds | " << fmt("%.4f", s.val_mean) << " +- "
     << fmt("%.4f", s.val_sd) << " | |\n\n"
     << "sd is the sample standard deviation (n - 1) over folds. Choose recipes and models on the validation row, "
        "not on the test rows. "
     << (info.method.empty() ? "Training" : "Prediction") << " time summed over folds: " << fmt("%.0f", fold_seconds)
     << " s; this invocation's wall time: " << fmt("%.0f", info.wall_seconds) << " s.\n\n"
     << info.members_md << (info.members_md.empty() ? "" : "\n")
     << "## Folds\n\n| fold | test subjects | validation subjects | train / val / test windows | best epoch | val acc | "
        "test acc | macro-F1 | seconds |\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& f : s.folds)
    md << "| " << f.fold << " | " << join(f.test_subjects, ", ") << " | " << join(f.val_subjects, ", ") << " | "
       << f.train_windows << " / " << f.val_windows << " / " << f.test_windows << " | "
       << (f.best_epoch < 0 ? std::string("-") : std::to_string(f.best_epoch)) << " | "
       << fmt("%.4f", f.best_val_acc) << " | " << fmt("%.4f", f.accuracy) << " | " << fmt("%.4f", f.macro_f1) << " | "
       << fmt("%.0f", f.seconds) << " |\n";
  md << "\n## Per subject (hardest first)\n\n![per-subject accuracy](per_subject.png)\n\n";
  const size_t hard = std::min<size_t>(5, s.subjects.size());
  md << "Hardest subjects:";
  for (size_t i = 0; i < hard; ++i)
    md << (i ? "," : "") << " " << s.subjects[i].subject << " (" << fmt("%.3f", s.subjects[i].accuracy()) << ", "
       << main_error(s.subjects[i].confusion, names) << ")";
  md << ".\n\n| subject | fold | test windows | accuracy | most frequent error |\n|---|---|---|---|---|\n";
  for (const auto& sr : s.subjects)
    md << "| " << sr.subject << " | " << sr.fold << " | " << sr.total() << " | " << fmt("%.4f", sr.accuracy()) << " | "
       << main_error(sr.confusion, names) << " |\n";
  md << "\n## Pooled confusion matrix\n\n![pooled confusion matrix](confusion.png)\n\nCounts (rows: true class, "
        "columns: predicted), with each class's recall:\n\n| true \\ predicted |";
  for (const auto& n : names) md << " " << n << " |";
  md << " recall |\n|---|";
  for (int64_t c = 0; c <= C; ++c) md << "---|";
  md << "\n";
  for (int64_t t = 0; t < C; ++t) {
    md << "| " << names[t] << " |";
    for (int64_t p = 0; p < C; ++p) md << " " << s.pooled.confusion[t * C + p] << " |";
    md << " " << fmt("%.4f", s.pooled.per_class[t].recall) << " |\n";
  }
  md << "\n## Settings\n\nModel: `" << info.model_config.dump() << "`\n\nTraining options: `" << info.options.dump()
     << "`\n\nCross-validation: `" << info.cv.dump() << "`\n\n## Reproduce\n\n```sh\n" << info.command << "\n```\n\n"
     << "Folds whose `fold-XX/result.json` exists with the same data and options are not trained again.\n";
  const std::string path = dir + "/cv.md";
  write_file_atomic(path, md.str());
  return path;
}

}  // namespace harvit::train
