// Data-parallel training over MPI ranks (run by ctest as `mpirun -np 2 test_mpi`): N ranks sharing
// every global batch compute what one process computes with the same batch, up to the order of
// the floating-point sums; the ranks hold identical weights; stops are agreed; a distributed run
// resumes bit for bit. Started without mpirun (one process) the tests skip, saying so.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/comm_mpi.h"
#include "core/rng.h"
#include "fixture_util.h"
#include "nn/checkpoint.h"
#include "nn/cnn.h"
#include "nn/vit.h"
#include "train/recipes.h"
#include "train/trainer.h"

using namespace harvit;
namespace fs = std::filesystem;

namespace {

Comm* g_world = nullptr;

// Three classes of sines on three axes (rotations need xyz triples), 8 subjects; unbalanced
// (6:3:1), so that balanced class weights make a share's loss normaliser differ from its size.
data::Dataset toy(int n = 240) { return test::toy_sines(n, 3, {0, 0, 0, 0, 0, 0, 1, 1, 1, 2}); }

nlohmann::json small() {
  nn::VitConfig c;
  c.P = 4; c.D = 16; c.H = 2; c.A = 8; c.L = 2; c.hidden = 32;
  return c.to_json();
}

// The CNN reports no gradient stages: its slab is summed in one allreduce after backward.
nlohmann::json small_cnn() {
  nn::CnnConfig c;
  c.channels = {8, 8};
  c.kernel = 3;
  return c.to_json();
}

nlohmann::json model_for(const std::string& param) { return param.rfind("cnn", 0) == 0 ? small_cnn() : small(); }
std::string recipe_of(const std::string& param) { return param.substr(param.find('-') + 1); }

// batch 50 over 180 training windows: 4 steps per epoch, the last one of 30 windows, so the
// ranks' shares are 25/25 and 15/15 (and with 3 ranks 16/17/17, 10/10/10).
train::TrainOptions opts(const std::string& recipe = "seed") {
  train::TrainOptions o;
  o.epochs = 3;
  o.batch = 50;
  o.lr = 3e-3;
  o.seed = 5;
  train::apply_recipe(recipe, o);
  if (recipe != "seed") o.class_weights = "balanced", o.epochs = 3;
  return o;
}

// A folder every rank names alike (rank 0's pid), removed at the end.
std::string shared_dir(const std::string& name) {
  int64_t pid = ::getpid();
  g_world->broadcast(&pid, sizeof pid);
  return (fs::temp_directory_path() / ("harvit_mpi_" + std::to_string(pid) + "_" + name)).string();
}

#define NEED_RANKS()                                                                                        \
  if (!g_world->distributed()) GTEST_SKIP() << "needs several MPI ranks (ctest runs it under mpirun -np 2)"

// Runs `steps` optimizer steps of a fresh session on `comm`.
std::unique_ptr<train::TrainSession> run_steps(const data::Dataset& ds, const nlohmann::json& cfg,
                                               const train::TrainOptions& o, Comm& comm, int64_t steps) {
  auto s = std::make_unique<train::TrainSession>(ds, cfg, o, comm);
  while (s->steps_run < steps && s->state.epoch < o.epochs)
    train::train_epoch(*s, [&] { return s->steps_run >= steps; });
  return s;
}

std::vector<float> of(const float* p, int64_t n) { return {p, p + n}; }

// The largest difference between this rank's values and rank 0's, on every rank.
double max_diff_to_root(const std::vector<float>& v) {
  std::vector<float> root = v;
  g_world->broadcast(root.data(), int64_t(root.size() * sizeof(float)));
  double d = 0;
  for (size_t i = 0; i < v.size(); ++i) d = std::max(d, double(std::fabs(v[i] - root[i])));
  int64_t bits;
  std::memcpy(&bits, &d, sizeof d);  // non-negative doubles order like their bit patterns
  g_world->allreduce_max(&bits, 1);
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

class Distributed : public ::testing::TestWithParam<std::string> {};

// The first step's gradient (after the allreduce) is the gradient of the whole global batch,
// with the seed's recipe and with augmentation, label smoothing and balanced class weights
// (whose loss normaliser is not the window count).
TEST_P(Distributed, FirstGradientIsTheGlobalBatchs) {
  NEED_RANKS();
  const auto ds = toy();
  const auto o = opts(recipe_of(GetParam()));
  const auto cfg = model_for(GetParam());
  auto dist = run_steps(ds, cfg, o, *g_world, 1);
  auto one = run_steps(ds, cfg, o, Comm::local(), 1);
  const int64_t n = one->model->params().count();
  const auto d = test::compare(dist->model->params().grads(), one->model->params().grads(), n);
  EXPECT_LE(d.rel(), 2e-6) << "max |g_ranks - g_one| " << d.max_abs << " of max |g| " << d.max_ref;
  EXPECT_EQ(max_diff_to_root(of(dist->model->params().grads(), n)), 0.0) << "ranks hold different gradients";
}

// Parameters after 12 steps (3 epochs, uneven last batches, the schedule) agree with one process
// (tolerances below), the ranks' weights and moments are bit-identical, and the epoch's loss and
// accuracy are the whole batch's.
TEST_P(Distributed, ParametersAfterStepsMatchOneProcess) {
  NEED_RANKS();
  const auto ds = toy();
  const auto o = opts(recipe_of(GetParam()));
  const auto cfg = model_for(GetParam());
  auto dist = std::make_unique<train::TrainSession>(ds, cfg, o, *g_world);
  auto one = std::make_unique<train::TrainSession>(ds, cfg, o, Comm::local());
  for (int e = 0; e < o.epochs; ++e) {
    const auto a = train::train_epoch(*dist), b = train::train_epoch(*one);
    EXPECT_NEAR(a.loss, b.loss, 1e-5 * std::max(1.0, b.loss)) << "epoch " << e;
    EXPECT_NEAR(a.acc, b.acc, 1.0 / 180 + 1e-12) << "epoch " << e;
  }
  ASSERT_EQ(dist->steps_run, 12);
  const int64_t n = one->model->params().count();
  const auto d = test::compare(dist->model->params().values(), one->model->params().values(), n);
  // AdamW moves a parameter by ~lr * m / sqrt(v) per step whatever the gradient's size, so a
  // parameter whose true gradient is zero (the attention keys' biases: adding one vector to every
  // key shifts each query's scores by a constant, which softmax ignores) follows the sign of its
  // rounding noise (~1e-11), which the summation order decides. Those are bounded by the steps
  // taken; every parameter with a real gradient (sqrt(v) above 1e-3 x the median) must agree to
  // 1e-5 (measured: 1.8e-6 with lr 3e-3, 12 steps).
  const float* th_d = dist->model->params().values();
  const float* th_1 = one->model->params().values();
  std::vector<float> v = one->adam.v();
  std::nth_element(v.begin(), v.begin() + n / 2, v.end());
  const double floor = 1e-3 * std::sqrt(v[n / 2]);
  double worst_real = 0, worst_noise = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double diff = std::fabs(th_d[i] - th_1[i]);
    double& worst = std::sqrt(one->adam.v()[i]) > floor ? worst_real : worst_noise;
    worst = std::max(worst, diff);
  }
  EXPECT_LE(worst_real, 1e-5) << "max |theta_ranks - theta_one| over parameters with a real gradient, 12 steps";
  EXPECT_LE(worst_noise, 12 * o.lr * 1.01) << "a zero-gradient parameter moved more than the steps allow";
  EXPECT_LE(d.max_abs, 12 * o.lr * 1.01);
  EXPECT_EQ(max_diff_to_root(of(dist->model->params().values(), n)), 0.0) << "ranks hold different weights";
  EXPECT_EQ(max_diff_to_root(dist->adam.v()), 0.0) << "ranks hold different AdamW moments";
  // validation: the ranks' shares reduced = one process over all of it
  const auto va = train::validate(*dist->model, ds, data::kVal, 7, *g_world);
  const auto vb = train::validate(*dist->model, ds, data::kVal, 7);
  EXPECT_NEAR(va.loss, vb.loss, 1e-6);
  EXPECT_DOUBLE_EQ(va.acc, vb.acc);
}

// The ViT's gradient is summed stage by stage while its backward runs, the CNN's in one piece.
INSTANTIATE_TEST_SUITE_P(ModelsAndRecipes, Distributed,
                         ::testing::Values("vit-seed", "vit-augmented", "cnn-seed", "cnn-augmented"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// Batch 179 over 180 windows: the epoch's second batch has one window, so a rank has none of it and
// must still take part in every sum (the ViT's four stage sums, zeros) - the same weights as one
// process after the epoch, with the ViT and with the CNN.
TEST(DistributedShares, ARankWithoutWindowsStillSums) {
  NEED_RANKS();
  const auto ds = toy();
  auto o = opts();
  o.batch = 179;
  for (const auto& cfg : {small(), small_cnn()}) {
    auto dist = std::make_unique<train::TrainSession>(ds, cfg, o, *g_world);
    auto one = std::make_unique<train::TrainSession>(ds, cfg, o, Comm::local());
    const auto a = train::train_epoch(*dist), b = train::train_epoch(*one);
    ASSERT_EQ(dist->steps_run, 2);
    EXPECT_NEAR(a.loss, b.loss, 1e-5);
    const int64_t n = one->model->params().count();
    const auto d = test::compare(dist->model->params().grads(), one->model->params().grads(), n);
    EXPECT_LE(d.rel(), 2e-6) << cfg.dump() << ": the last step's gradient";
    EXPECT_EQ(max_diff_to_root(of(dist->model->params().values(), n)), 0.0);
  }
}

// A stop asked on one rank only stops every rank before the same step.
TEST(DistributedStop, OneRankAskingStopsAll) {
  NEED_RANKS();
  const auto ds = toy();
  train::TrainSession s(ds, small(), opts(), *g_world);
  const auto es = train::train_epoch(s, [&] { return g_world->rank() == 1 && s.steps_run >= 2; });
  EXPECT_FALSE(es.complete);
  EXPECT_EQ(s.state.step, 2);
  int64_t steps[1] = {s.steps_run};
  int64_t most = steps[0];
  g_world->allreduce_max(&most, 1);
  EXPECT_EQ(steps[0], most) << "ranks ran different numbers of steps";
}

// Interrupted after 5 steps (inside epoch 2) and resumed: the same weights, history and best
// checkpoint as the uninterrupted distributed run, bit for bit. Only rank 0 writes files.
TEST(DistributedResume, BitIdenticalToUninterrupted) {
  NEED_RANKS();
  const auto ds = toy();
  const std::string dir = shared_dir("resume");
  auto full = opts("augmented");
  full.out_dir = dir + "/full";
  auto part = full;
  part.out_dir = dir + "/part";
  part.max_steps = 5;
  const auto r_full = train::train_model(ds, small(), full, *g_world);
  const auto r_part = train::train_model(ds, small(), part, *g_world);
  EXPECT_TRUE(r_part.interrupted);
  part.max_steps = 0;
  part.resume = true;
  const auto r_res = train::train_model(ds, small(), part, *g_world);
  EXPECT_FALSE(r_res.interrupted);
  ASSERT_EQ(r_res.history.size(), r_full.history.size());
  for (size_t e = 0; e < r_full.history.size(); ++e) {
    EXPECT_EQ(r_res.history[e].train_loss, r_full.history[e].train_loss) << "epoch " << e + 1;
    EXPECT_EQ(r_res.history[e].val_acc, r_full.history[e].val_acc) << "epoch " << e + 1;
  }
  g_world->barrier();
  if (g_world->root()) {
    auto a = nn::load_checkpoint(full.out_dir + "/best.safetensors"), b = nn::load_checkpoint(part.out_dir + "/best.safetensors");
    const auto d = test::compare(b.model->params().values(), a.model->params().values(), a.model->params().count());
    EXPECT_EQ(d.max_abs, 0.0);
  }
  g_world->barrier();
  if (g_world->root()) fs::remove_all(dir);
}

// Ranks started on different data refuse to train together, with one message naming the rank:
// other counts, and the same counts with other contents (one window changed on rank 1).
TEST(DistributedChecks, DifferentDataOnARankIsAnError) {
  NEED_RANKS();
  for (const bool same_counts : {false, true}) {
    auto ds = toy(g_world->rank() == 0 || same_counts ? 240 : 232);
    if (same_counts && g_world->rank() == 1) ds.x[5] += 0.5f;
    try {
      train::TrainSession s(ds, small(), opts(), *g_world);
      ADD_FAILURE() << "no error (same counts: " << same_counts << ")";
    } catch (const CollectiveError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("not started on the same data"), std::string::npos) << what;
      EXPECT_NE(what.find("rank 1: "), std::string::npos) << what;
      EXPECT_NE(what.find("fingerprint"), std::string::npos) << what;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  g_world = &mpi_world(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (const char* want = std::getenv("HARVIT_EXPECT_RANKS"); want && std::atoi(want) != g_world->size()) {
    std::fprintf(stderr, "test_mpi: started as %d rank(s), HARVIT_EXPECT_RANKS=%s: the launcher did not make one world "
                 "of that size (another MPI's mpirun?); the tests would skip\n", g_world->size(), want);
    return 1;
  }
  // One report: the other ranks' listeners are removed (their failures still fail the run:
  // mpirun returns a rank's non-zero status).
  if (!g_world->root()) delete ::testing::UnitTest::GetInstance()->listeners().Release(
      ::testing::UnitTest::GetInstance()->listeners().default_result_printer());
  return RUN_ALL_TESTS();
}
