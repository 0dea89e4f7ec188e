// `harvit cv`: subject-wise cross-validation (train/cv.h). The folds are the unit of parallelism:
// under mpirun they are spread over the ranks (the i-th fold to run on rank i % size) and the
// results gathered to rank 0; without mpirun, --jobs N forks N worker processes on this machine,
// worker j taking the i-th fold with i % N == j, and the parent aggregates from the fold folders.
// Every fold is trained by one process, so the numbers do not depend on how they were spread.
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "core/gemm.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "train/cv.h"

namespace harvit::cli {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

struct CvArgs {
  std::string data, out = "runs/cv", only, combine;
  train::CvOptions cv;
  int jobs = 1;
  TrainArgs ta;
};

// A fold that failed leaves its message here (removed when the fold is tried again).
std::string error_path(const std::string& fold_dir) { return (fs::path(fold_dir) / "error.txt").string(); }

void say(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// The folds to run: all, or those of --only (1-based, each once, within 1..K).
std::vector<int> selected_folds(const std::string& only, int K) {
  std::vector<int> sel;
  if (only.empty()) {
    for (int k = 1; k <= K; ++k) sel.push_back(k);
    return sel;
  }
  std::set<int> seen;
  for (int32_t k : parse_int_list(only, "--only")) {
    if (k < 1 || k > K)
      fail("--only " + only + ": fold " + std::to_string(k) + " does not exist (the folds are 1.." + std::to_string(K) + ")");
    if (seen.insert(k).second) sel.push_back(k);
  }
  if (sel.empty()) fail("--only '" + only + "': no fold named");
  return sel;
}

// Forks `jobs` workers; worker j runs the i-th selected fold for i % jobs == j (1 thread unless
// --threads). Waits for all of them (a worker that fails stops, the others finish their folds,
// whose results are kept) and fails naming the folds that have no result.
void run_workers(int jobs, const std::vector<int>& sel, int threads, const std::string& out_dir,
                 const std::function<void(int)>& run_one) {
  std::vector<pid_t> pids;
  for (int k : sel) fs::remove(error_path(train::fold_dir(out_dir, k)));
  std::fflush(stdout);
  std::fflush(stderr);
  for (int j = 0; j < jobs; ++j) {
    const pid_t pid = ::fork();
    if (pid < 0) fail(std::string("cv: cannot start worker process: ") + std::strerror(errno));
    if (pid == 0) {  // the worker: OpenMP's threads start here, never in the parent before fork
      int code = 0;
      try {
        set_num_threads(threads > 0 ? threads : 1);
        for (size_t i = j; i < sel.size(); i += jobs) run_one(sel[i]);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "harvit cv: error in worker %d of %d: %s\n", j + 1, jobs, e.what());
        code = 1;
      }
      std::fflush(stdout);
      std::fflush(stderr);
      std::_Exit(code);
    }
    pids.push_back(pid);
  }
  std::string failed;
  for (int j = 0; j < jobs; ++j) {
    int st = 0;
    while (::waitpid(pids[j], &st, 0) < 0)
      if (errno != EINTR) fail(std::string("cv: waiting for worker: ") + std::strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
    const std::string how = WIFEXITED(st) ? "exit status " + std::to_string(WEXITSTATUS(st))
                                          : "killed by signal " + std::to_string(WTERMSIG(st));
    // The fold that failed left error.txt; a worker that was killed left its current fold without
    // a result.
    std::string which = "?", why;
    for (size_t i = j; i < sel.size(); i += jobs) {
      const std::string dir = train::fold_dir(out_dir, sel[i]);
      if (std::ifstream err{error_path(dir)}) {
        which = std::to_string(sel[i]);
        std::getline(err, why);
        break;
      }
      if (which == "?" && !fs::exists(train::fold_result_path(dir))) which = std::to_string(sel[i]);
    }
    failed += (failed.empty() ? "" : "; ") + std::string("worker ") + std::to_string(j + 1) + " (" + how +
              ") failed on fold " + which + (why.empty() ? "" : " (" + why + ")");
  }
  if (!failed.empty())
    fail("cv: " + failed + "; the folds that finished are kept: run the same command again to train only the "
         "missing ones");
}

// --combine: an ensemble of finished runs (train::combine_fold), fold by fold, over the folds that
// every run has finished; the report compares it with each run on those same folds.
int run_combine(CvArgs& a, CLI::App* cmd, const data::Dataset& ds, const std::vector<train::FoldSpec>& folds,
                const std::vector<int>& sel, std::chrono::steady_clock::time_point t0) {
  if (job_comm().distributed())  // every rank is here: rank 0 says it, the others end quietly
    throw CollectiveError("--combine only predicts, in one process: run it without mpirun");
  for (const CLI::Option* o : cmd->get_options()) {
    static const std::set<std::string> allowed = {"help", "data", "folds", "out", "val-fraction", "fold-seed",
                                                  "only", "combine", "threads"};
    if (o->count() > 0 && !o->get_lnames().empty() && !allowed.count(o->get_lnames()[0]))
      fail("--combine trains nothing, so --" + o->get_lnames()[0] +
           " does not apply (each run's folds were trained with its own options)");
  }
  std::vector<std::string> runs;
  {
    std::stringstream ss(a.combine);
    for (std::string r; std::getline(ss, r, ',');) {
      if (r.empty()) continue;
      if (!fs::is_directory(r)) fail("--combine: " + r + " is not a folder (give the --out folders of finished cv runs)");
      for (const auto& q : runs)
        if (fs::equivalent(q, r)) fail("--combine: " + r + " is named twice");
      runs.push_back(r);
    }
  }
  if (runs.size() < 2) fail("--combine needs two or more cv folders, comma-separated, not '" + a.combine + "'");
  for (const auto& r : runs)
    if (fs::exists(a.out) && fs::equivalent(r, a.out))
      fail("--out " + a.out + " is one of the combined runs: its report would be overwritten; give another --out");
  set_num_threads(threads_for(job_comm(), a.ta.threads));
  const int K = static_cast<int>(folds.size());
  std::vector<train::FoldResult> ens;
  std::vector<std::vector<train::FoldResult>> per_run(runs.size());
  std::vector<std::string> run_models(runs.size());
  std::vector<int> missing;
  for (int k : sel) {
    const train::FoldSpec& f = folds[k - 1];
    const json subjects =
        train::fold_subjects_identity(train::fold_identity(ds, a.cv, f, json(), train::TrainOptions()));
    std::vector<train::MemberFold> members;
    for (const auto& r : runs)
      if (auto m = train::load_member_fold(r, k, subjects)) members.push_back(std::move(*m));
    if (members.size() < runs.size()) {
      missing.push_back(k);
      continue;
    }
    json identity = subjects;
    identity["members"] = json::array();
    for (size_t i = 0; i < runs.size(); ++i) {
      const json& id = members[i].result.identity;
      identity["members"].push_back({{"run", runs[i]}, {"model", id.value("model", json())},
                                     {"options", id.value("options", json())}});
      if (run_models[i].empty()) run_models[i] = id.value("model", json::object()).value("model", std::string("?"));
    }
    train::FoldResult r = train::combine_fold(train::fold_dataset(ds, f), f, members, identity);
    std::string line = "fold " + std::to_string(k) + ": ensemble val acc " + std::to_string(r.best_val_acc).substr(0, 6) +
                       ", test acc " + std::to_string(r.accuracy).substr(0, 6) + " (members:";
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto& mr = members[i].result;
      line += " " + std::to_string(mr.best_val_acc).substr(0, 6) + " / " + std::to_string(mr.accuracy).substr(0, 6);
      per_run[i].push_back(mr);
    }
    say(line + ")");
    ens.push_back(std::move(r));
  }
  if (ens.empty())
    fail("--combine: no fold is finished in every run (" + std::to_string(missing.size()) + " folds lack a result in one of them)");
  const train::CvSummary sum = train::aggregate(ens, K);
  std::ostringstream mdm;
  mdm << "## The ensemble and its members, on the same " << ens.size() << " folds\n\n"
      << "| | validation subjects, mean +- sd over folds | test accuracy, mean +- sd over folds | pooled accuracy | "
         "pooled macro-F1 |\n|---|---|---|---|---|\n";
  const auto row = [&](const std::string& name, const train::CvSummary& s) {
    char b[160];
    std::snprintf(b, sizeof b, " | %.4f +- %.4f | %.4f +- %.4f | %.4f | %.4f |\n", s.val_mean, s.val_sd, s.acc_mean,
                  s.acc_sd, s.pooled.accuracy, s.pooled.f1_macro);
    return "| " + name + b;
  };
  mdm << row("**ensemble** (mean of class probabilities)", sum);
  std::printf("\n%-44s %18s %18s %8s %8s\n", "", "val (choose on)", "test mean +- sd", "pooled", "pool F1");
  const auto print = [](const std::string& name, const train::CvSummary& s) {
    std::printf("%-44s %8.4f +- %.4f %8.4f +- %.4f %8.4f %8.4f\n", name.substr(0, 44).c_str(), s.val_mean, s.val_sd,
                s.acc_mean, s.acc_sd, s.pooled.accuracy, s.pooled.f1_macro);
  };
  print("ensemble", sum);
  for (size_t i = 0; i < runs.size(); ++i) {
    const train::CvSummary ms = train::aggregate(per_run[i], K);
    mdm << row("`" + runs[i] + "` (" + run_models[i] + ")", ms);
    print(runs[i] + " (" + run_models[i] + ")", ms);
  }
  if (!missing.empty()) {
    mdm << "\nLeft out: fold";
    for (size_t i = 0; i < missing.size(); ++i) mdm << (i ? ", " : " ") << missing[i];
    mdm << " (not finished in every run).\n";
  }

  train::CvReportInfo info;
  info.command = command_line();
  info.data = a.data + " (" + ds.name + ")";
  std::string names;
  for (size_t i = 0; i < runs.size(); ++i) names += (i ? " + " : "") + run_models[i];
  info.model = "ensemble of " + names;
  info.title = "harvit cv: ensemble of " + names + " on " + ds.name + ", " +
               (a.cv.folds == "loso" ? "LOSO" : a.cv.folds + " folds");
  info.model_config = json::array();
  for (const auto& id : ens.front().identity["members"]) info.model_config.push_back(id["model"]);
  info.options = {{"combine", runs}, {"rule", "mean of the members' class probabilities, equal weights"}};
  info.cv = {{"folds", a.cv.folds}, {"val_fraction", a.cv.val_fraction}, {"fold_seed", a.cv.fold_seed}};
  info.class_names = ds.class_names;
  info.method = "Each fold's models - the one each run selected on the fold's validation subjects - predict the "
                "fold's validation and test windows; their class probabilities are averaged with equal weights "
                "(fixed beforehand, nothing fitted) and the most probable class of the average is the label. "
                "Compare the ensemble with its members on the validation row of the table below; the test rows are "
                "reported, not chosen on.";
  info.members_md = mdm.str();
  info.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string md = train::write_cv_report(a.out, sum, info);
  std::printf("%zu of %d folds combined; report: %s (wall time %.0f s)\n", ens.size(), K, md.c_str(),
              info.wall_seconds);
  return 0;
}

int run_cv(CvArgs& a, CLI::App* cmd) {
  Comm& comm = job_comm();
  const auto t0 = std::chrono::steady_clock::now();
  a.ta.resolve(cmd);
  a.ta.opt.command = command_line();
  const json model_cfg = a.ta.model_config();
  if (a.jobs < 1) fail("--jobs must be at least 1, not " + std::to_string(a.jobs));
  if (comm.distributed() && a.jobs > 1)
    fail("--jobs forks worker processes on one machine; under mpirun the folds are spread over the ranks: drop --jobs");
  const data::Dataset ds = data::load_dataset(a.data);
  const auto folds = train::make_folds(ds, a.cv);
  const int K = static_cast<int>(folds.size());
  const auto sel = selected_folds(a.only, K);
  if (!a.combine.empty()) return run_combine(a, cmd, ds, folds, sel, t0);
  std::vector<json> ids;
  for (const auto& f : folds) ids.push_back(train::fold_identity(ds, a.cv, f, model_cfg, a.ta.opt));
  fs::create_directories(a.out);
  train::install_interrupt_handler();
  note_mpirun_stop_timeout(comm);
  if (comm.root())
    say("cv: " + ds.name + ", " + std::to_string(train::cv_subjects(ds).size()) + " subjects, " + std::to_string(K) +
        " folds (" + a.cv.folds + "), running " + std::to_string(sel.size()) + " of them; " + a.ta.model + ", " +
        std::to_string(a.ta.opt.epochs) + " epochs, recipe " + a.ta.recipe + "; " +
        (comm.distributed() ? comm.describe() : a.jobs > 1 ? std::to_string(a.jobs) + " worker processes" : "1 process") +
        "; folds in " + a.out);

  const auto run_one = [&](int k) {
    const train::FoldSpec& f = folds[k - 1];
    const std::string dir = train::fold_dir(a.out, k);
    std::error_code ec;
    fs::remove(error_path(dir), ec);
    try {
      if (auto done = train::load_fold_result(dir, ids[k - 1])) {
        char line[160];
        std::snprintf(line, sizeof line, "fold %d: done before (%s): test accuracy %.4f, skipped", k,
                      train::fold_result_path(dir).c_str(), done->accuracy);
        say(line);
        return *done;
      }
      return train::run_fold(train::fold_dataset(ds, f), f, model_cfg, a.ta.opt, dir, ids[k - 1], say,
                             train::interrupt_requested);
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (what.rfind("fold ", 0) != 0) what = "fold " + std::to_string(k) + ": " + what;
      // For the parent of --jobs workers, and for whoever looks at the folder later.
      fs::create_directories(dir, ec);
      std::ofstream(error_path(dir)) << what << "\n";
      fail(what);
    }
  };

  std::map<int, train::FoldResult> results;
  if (comm.distributed()) {
    set_num_threads(threads_for(comm, a.ta.threads));
    // Rank 0 takes the folds already done (refusing another run's results, as one process does)
    // and deals out the rest, so that a run continued after a stop keeps every rank busy.
    std::string todo_s, why;
    if (comm.root()) {
      std::vector<int> todo;
      try {
        for (int k : sel)
          if (auto r = train::load_fold_result(train::fold_dir(a.out, k), ids[k - 1]))
            results.emplace(k, std::move(*r));
          else
            todo.push_back(k);
      } catch (const std::exception& e) {
        why = e.what();
      }
      todo_s = json(todo).dump();
      if (!results.empty())
        say("cv: " + std::to_string(results.size()) + " folds done before (their results kept), " +
            std::to_string(todo.size()) + " to run");
    }
    comm.broadcast(why);
    if (!why.empty()) throw CollectiveError(why);
    comm.broadcast(todo_s);
    const auto todo = json::parse(todo_s).get<std::vector<int>>();
    // A fold that fails is reported, and this rank goes on with its next fold (a stop ends its
    // share): every rank reaches the gather, and the folds that finished are kept.
    json mine = json::array(), errors = json::array();
    for (size_t i = comm.rank(); i < todo.size(); i += comm.size()) {
      if (train::interrupt_requested()) {
        errors.push_back("fold " + std::to_string(todo[i]) + ": not started (interrupted)");
        continue;
      }
      try {
        mine.push_back(run_one(todo[i]).to_json());
      } catch (const std::exception& e) {
        errors.push_back(std::string(e.what()) + " (rank " + std::to_string(comm.rank()) + ")");
      }
    }
    const auto all = comm.gather(json{{"results", mine}, {"errors", errors}}.dump(), 0);
    std::string failed;
    if (comm.root()) {
      for (const auto& s : all) {
        const json j = json::parse(s);
        for (const auto& r : j.at("results")) {
          auto fr = train::FoldResult::from_json(r);
          results.emplace(fr.fold, std::move(fr));
        }
        for (const auto& e : j.at("errors")) failed += (failed.empty() ? "" : "; ") + e.get<std::string>();
      }
      if (!failed.empty())
        failed = "cv: " + failed + "; the folds that finished are kept: run the same command again to train only "
                 "the missing ones";
    }
    comm.broadcast(failed);
    if (!failed.empty()) throw CollectiveError(failed);
    if (!comm.root()) return 0;
  } else if (a.jobs > 1) {
    const int jobs = std::min<int>(a.jobs, static_cast<int>(sel.size()));
    run_workers(jobs, sel, a.ta.threads, a.out, [&](int k) { run_one(k); });
    for (int k : sel) {
      auto r = train::load_fold_result(train::fold_dir(a.out, k), ids[k - 1]);
      if (!r) fail("fold " + std::to_string(k) + ": the worker ended without writing " +
                   train::fold_result_path(train::fold_dir(a.out, k)));
      results.emplace(k, std::move(*r));
    }
  } else {
    set_num_threads(threads_for(comm, a.ta.threads));
    for (int k : sel) results.emplace(k, run_one(k));
  }
  // Folds not run by this invocation (--only) count when an earlier one left their result.
  for (int k = 1; k <= K; ++k) {
    if (results.count(k)) continue;
    try {
      if (auto r = train::load_fold_result(train::fold_dir(a.out, k), ids[k - 1])) results.emplace(k, std::move(*r));
    } catch (const std::exception& e) {
      say(std::string("cv: leaving out ") + e.what());
    }
  }
  std::vector<train::FoldResult> done;
  for (auto& [k, r] : results) done.push_back(std::move(r));
  const train::CvSummary sum = train::aggregate(std::move(done), K);

  train::CvReportInfo info;
  info.command = a.ta.opt.command;
  info.data = a.data + " (" + ds.name + ")";
  info.model = a.ta.model;
  info.title = "harvit cv: " + a.ta.model + " on " + ds.name + ", " + (a.cv.folds == "loso" ? "LOSO" : a.cv.folds + " folds");
  info.model_config = model_cfg;  // with the data's shape, as the fold models were built
  info.model_config["T"] = ds.T, info.model_config["M"] = ds.M;
  info.model_config["C"] = static_cast<int64_t>(ds.class_names.size());
  info.options = a.ta.opt.to_json();
  info.options["recipe"] = a.ta.recipe;
  info.cv = {{"folds", a.cv.folds}, {"val_fraction", a.cv.val_fraction}, {"fold_seed", a.cv.fold_seed}};
  info.class_names = ds.class_names;
  info.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const std::string md = train::write_cv_report(a.out, sum, info);
  std::printf("\n%-6s %-24s %10s %10s %10s\n", "fold", "test subjects", "best ep.", "test acc", "macro-F1");
  for (const auto& f : sum.folds) {
    std::string subj;
    for (size_t i = 0; i < f.test_subjects.size(); ++i) subj += (i ? "," : "") + std::to_string(f.test_subjects[i]);
    if (subj.size() > 24) subj = subj.substr(0, 21) + "...";
    std::printf("%-6d %-24s %10d %10.4f %10.4f\n", f.fold, subj.c_str(), f.best_epoch, f.accuracy, f.macro_f1);
  }
  std::printf("%zu of %d folds: accuracy %.4f +- %.4f, macro-F1 %.4f +- %.4f (mean +- sd over folds); pooled accuracy "
              "%.4f, macro-F1 %.4f\n",
              sum.folds.size(), K, sum.acc_mean, sum.acc_sd, sum.f1_mean, sum.f1_sd, sum.pooled.accuracy,
              sum.pooled.f1_macro);
  std::printf("hardest subjects:");
  for (size_t i = 0; i < std::min<size_t>(5, sum.subjects.size()); ++i)
    std::printf(" %d (%.3f)", sum.subjects[i].subject, sum.subjects[i].accuracy());
  std::printf("\nreport: %s (wall time %.0f s)\n", md.c_str(), info.wall_seconds);
  return 0;
}

}  // namespace

Runner add_cv_command(CLI::App& app) {
  auto a = std::make_shared<CvArgs>();
  auto* sc = app.add_subcommand(
      "cv",
      "subject-wise cross-validation: every subject tested once by a model selected on other subjects; mean +- sd, "
      "per-subject accuracy, pooled confusion matrix. Folds whose OUT/fold-XX/result.json exists with the same data "
      "and options are skipped, so running the same command again continues an interrupted run. Under mpirun the "
      "folds are spread over the ranks; without it, --jobs N runs N worker processes");
  sc->add_option("--data", a->data, "dataset file from `harvit prepare` (its split is ignored except dropped windows)")
      ->required();
  sc->add_option("--folds", a->cv.folds, "loso (one fold per subject) | K (K subject-grouped folds, seeded)")
      ->capture_default_str();
  sc->add_option("--out", a->out, "folder: OUT/fold-XX/ per fold, OUT/cv.md, cv.json, per_subject.png, confusion.png")
      ->capture_default_str();
  sc->add_option("--val-fraction", a->cv.val_fraction,
                 "validation subjects: this fraction of each fold's non-test subjects (at least one)")
      ->capture_default_str();
  sc->add_option("--fold-seed", a->cv.fold_seed, "seed of the K-fold grouping and the validation subjects")
      ->capture_default_str();
  sc->add_option("--only", a->only, "run only these folds (1-based, comma-separated); the report covers every fold done");
  sc->add_option("--jobs", a->jobs, "without mpirun: N worker processes on this machine (1 thread each unless --threads)")
      ->capture_default_str();
  sc->add_option("--combine", a->combine,
                 "no training: an ensemble of finished cv runs of the same data and folds (their --out folders, "
                 "comma-separated): in each fold the models they selected average their class probabilities "
                 "(equal weights); the report compares it with each run on the same folds, validation subjects first");
  add_train_options(sc, a->ta);
  return [a, sc] { return run_cv(*a, sc); };
}

}  // namespace harvit::cli
