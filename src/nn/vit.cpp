#include "nn/vit.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <nlohmann/json.hpp>

#include "core/gemm.h"
#include "core/stages.h"
#include "core/threading.h"
#include "nn/layers.h"

namespace harvit::nn {

using json = nlohmann::json;

// ---- config ----------------------------------------------------------------------------------

int64_t VitConfig::tokens(int64_t l) const {
  int64_t n = N();
  for (int64_t i = 0; i < l; ++i) n = (n + 1) / 2;
  return n;
}

void VitConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) fail("invalid ViT config: " + what);
  };
  need(T > 0 && M > 0 && P > 0 && D > 0 && H > 0 && A > 0 && hidden > 0,
       "T, M, P, D, H, A and hidden must all be positive");
  need(C >= 2, "C (classes) must be at least 2, got " + std::to_string(C));
  need(L >= 0, "L (blocks) must be >= 0");
  need(T >= P, "window length T=" + std::to_string(T) + " is shorter than one patch P=" +
                   std::to_string(P));
}

json VitConfig::to_json() const {
  return json{{"model", "vit"}, {"T", T}, {"M", M}, {"C", C}, {"P", P}, {"D", D},
              {"H", H},         {"A", A}, {"L", L}, {"hidden", hidden}};
}

VitConfig VitConfig::from_json(const json& j) {
  VitConfig c;
  auto get = [&](const char* key, int64_t& dst) {
    if (!j.contains(key)) fail(std::string("model config is missing \"") + key + "\"");
    if (!j.at(key).is_number_integer())
      fail(std::string("model config field \"") + key + "\" must be an integer");
    dst = j.at(key).get<int64_t>();
  };
  get("T", c.T); get("M", c.M); get("C", c.C); get("P", c.P); get("D", c.D);
  get("H", c.H); get("A", c.A); get("L", c.L); get("hidden", c.hidden);
  c.validate();
  return c;
}

std::vector<LayerSummary> vit_summary(const VitConfig& c) {
  c.validate();
  std::vector<LayerSummary> rows;
  const int64_t N = c.N(), HA = c.H * c.A;
  rows.push_back({"patch_conv", {1, c.D, N, c.M}, c.D * c.P + c.D, c.M * N * c.D * c.P, 0});
  rows.push_back({"position_embedding", {1, c.M, N, c.D}, c.M * N * c.D, 0, 0});
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t n = c.tokens(l), n2 = c.tokens(l + 1);
    const std::string p = "msa_layer." + std::to_string(l);
    rows.push_back({p + " attention", {1, c.M, n, c.D},
                    3 * (c.D * HA + HA) + (HA * c.D + c.D) + 2 * c.D,
                    3 * c.M * n * c.D * HA + c.M * n * HA * c.D, 2 * c.M * c.H * n * n * c.A});
    rows.push_back({p + " patch_merge", {1, c.M, n2, c.D}, 2 * c.D * c.D + c.D + 2 * c.D,
                    c.M * n2 * 2 * c.D * c.D, 0});
  }
  rows.push_back({"flatten", {1, c.F()}, 0, 0, 0});
  rows.push_back({"dense_tower.0", {1, c.hidden}, c.F() * c.hidden + c.hidden, c.F() * c.hidden, 0});
  rows.push_back({"dense_tower.1-2 (LN, ReLU)", {1, c.hidden}, 2 * c.hidden, 0, 0});
  rows.push_back({"dense_tower.3", {1, c.C}, c.hidden * c.C + c.C, c.hidden * c.C, 0});
  return rows;
}

// ---- model -----------------------------------------------------------------------------------

Vit::Vit(const VitConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  const int64_t D = cfg_.D, HA = cfg_.H * cfg_.A, P = cfg_.P;
  auto& ps = params_;
  // Registration order = the PyTorch state_dict order (module's own parameters first).
  pos_ = ps.add("position_embedding", {1, cfg_.M, cfg_.N(), D}, Init::Zeros);
  pe_w_ = ps.add("patch_conv.weight", {D, 1, P, 1}, Init::Uniform, P);
  pe_b_ = ps.add("patch_conv.bias", {D}, Init::Uniform, P);
  for (int64_t l = 0; l < cfg_.L; ++l) {
    const std::string p = "msa_layer." + std::to_string(l) + ".";
    // q, k, v weights side by side (3*HA, D) and their biases (3*HA): one fused projection GEMM.
    const int64_t wqkv = ps.reserve(3 * HA * D), bqkv = ps.reserve(3 * HA);
    const char* qkv[3] = {"query.", "key.", "value."};
    for (int64_t i = 0; i < 3; ++i) {
      ps.add(p + qkv[i] + "weight", {HA, D}, Init::Uniform, D, wqkv + i * HA * D);
      ps.add(p + qkv[i] + "bias", {HA}, Init::Uniform, D, bqkv + i * HA);
    }
    Block b{};
    b.qkv = Linear(wqkv, bqkv, D, 3 * HA);
    const int64_t wo = ps.add(p + "att_mlp.0.weight", {D, HA}, Init::Uniform, HA);
    b.o = Linear(wo, ps.add(p + "att_mlp.0.bias", {D}, Init::Uniform, HA), HA, D);
    b.g1 = ps.add(p + "att_mlp.1.weight", {D}, Init::Ones);
    b.b1 = ps.add(p + "att_mlp.1.bias", {D}, Init::Zeros);
    const int64_t wm = ps.add(p + "downsample_mlp.0.weight", {D, 2 * D}, Init::Uniform, 2 * D);
    b.merge = Linear(wm, ps.add(p + "downsample_mlp.0.bias", {D}, Init::Uniform, 2 * D), 2 * D, D);
    b.g2 = ps.add(p + "downsample_mlp.1.weight", {D}, Init::Ones);
    b.b2 = ps.add(p + "downsample_mlp.1.bias", {D}, Init::Zeros);
    blocks_.push_back(b);
  }
  const int64_t d0w = ps.add("dense_tower.0.weight", {cfg_.hidden, cfg_.F()}, Init::Uniform, cfg_.F());
  d0_ = Linear(d0w, ps.add("dense_tower.0.bias", {cfg_.hidden}, Init::Uniform, cfg_.F()), cfg_.F(), cfg_.hidden);
  d1g_ = ps.add("dense_tower.1.weight", {cfg_.hidden}, Init::Ones);
  d1b_ = ps.add("dense_tower.1.bias", {cfg_.hidden}, Init::Zeros);
  const int64_t d3w = ps.add("dense_tower.3.weight", {cfg_.C, cfg_.hidden}, Init::Uniform, cfg_.hidden);
  d3_ = Linear(d3w, ps.add("dense_tower.3.bias", {cfg_.C}, Init::Uniform, cfg_.hidden), cfg_.hidden, cfg_.C);
  // the order in which backward_from_logits completes the gradients
  std::vector<std::vector<std::string>> stages{{"dense_tower."}};
  for (int64_t l = cfg_.L - 1; l >= 0; --l) stages.push_back({"msa_layer." + std::to_string(l) + "."});
  stages.push_back({"position_embedding", "patch_conv."});
  set_grad_stages(stages);
  ps.finalize();
  Rng rng(0);
  ps.init_default(rng);
}

nlohmann::json Vit::config_json() const { return cfg_.to_json(); }

void Vit::set_precision(Precision p) {
  if (p == Precision::Bf16) require_bf16();  // before any layer changes
  const float* w = params_.values();
  for (Block& b : blocks_)
    for (Linear* l : {&b.qkv, &b.o, &b.merge}) l->set_precision(p, w);
  d0_.set_precision(p, w);
  d3_.refresh_weights(w);  // stays fp32; its packed panels (if any) must follow the weights too
  precision_ = p;
}

void Vit::params_changed() {  // bf16 weight copies and packed fp32 panels, where there are any
  const float* w = params_.values();
  for (Block& b : blocks_)
    for (Linear* l : {&b.qkv, &b.o, &b.merge}) l->refresh_weights(w);
  d0_.refresh_weights(w);
  d3_.refresh_weights(w);
}

void Vit::prepare_inference() {
  inference_ = true;
  for (Block& b : blocks_)
    for (Linear* l : {&b.qkv, &b.o, &b.merge}) l->set_packed_inference(true);
  d0_.set_packed_inference(true);
  d3_.set_packed_inference(true);
}

void Vit::ensure_batch(int64_t B) {
  set_batch(B);
  if (B <= capacity_) return;  // buffers only grow: no allocation when the batch shrinks
  capacity_ = B;
  const auto& c = cfg_;
  const int64_t HA = c.H * c.A, G = B * c.M;
  patches_.assign(G * c.N() * c.P, 0.0f);
  h0_.assign(G * c.N() * c.D, 0.0f);
  acts_.assign(c.L, {});
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t n = c.tokens(l), n2 = c.tokens(l + 1), R = G * n, R2 = G * n2;
    auto& a = acts_[l];
    a.qkv.assign(R * 3 * HA, 0.0f);
    a.att.assign(G * c.H * n * n, 0.0f);
    a.z.assign(R * HA, 0.0f); a.o.assign(R * c.D, 0.0f);
    a.mean1.assign(R, 0.0f); a.rstd1.assign(R, 0.0f); a.y.assign(R * c.D, 0.0f);
    a.cat.assign(n % 2 ? R2 * 2 * c.D : 0, 0.0f);  // even n: the merge reads y itself
    a.u.assign(R2 * c.D, 0.0f);
    a.mean2.assign(R2, 0.0f); a.rstd2.assign(R2, 0.0f); a.out.assign(R2 * c.D, 0.0f);
  }
  a1_.assign(B * c.hidden, 0.0f); r_.assign(B * c.hidden, 0.0f);
  mean_h_.assign(B, 0.0f); rstd_h_.assign(B, 0.0f);
  logits_.assign(B * c.C, 0.0f);
}

void Vit::ensure_grad_buffers() {
  if (grad_capacity_ >= capacity_) return;  // sized with the activations, on the first backward
  grad_capacity_ = capacity_;
  const auto& c = cfg_;
  const int64_t B = capacity_, HA = c.H * c.A, G = B * c.M;
  dh_.assign(c.L + 1, {});
  int64_t maxR = 0;
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t R = G * c.tokens(l);
    dh_[l].assign(R * c.D, 0.0f);
    maxR = std::max(maxR, R);
  }
  dh_[c.L].assign(B * c.F(), 0.0f);
  dr_.assign(B * c.hidden, 0.0f); da1_.assign(B * c.hidden, 0.0f);
  dqkv_.assign(maxR * 3 * HA, 0.0f);
  dz_.assign(maxR * HA, 0.0f);
  dtmp_.assign(std::max(maxR * c.D, B * c.hidden), 0.0f);
  dy_.assign(maxR * c.D, 0.0f);
  dcat_.assign(maxR * 2 * c.D, 0.0f);  // ceil(n/2)*2 <= n+1 rows of D: within 2*maxR*D
}

namespace {
// The first row, in block l's (G, n_l) token rows, of last-level unit u (unit = one token of the
// blocks' output; token j of a group covers tokens [j s, (j + 1) s) of block l, s = 2^(L - l),
// the last one cut short where a merge padded).
int64_t unit_row(const VitConfig& c, int64_t l, int64_t u) {
  const int64_t nL = c.tokens(c.L), n = c.tokens(l), g = u / nL, j = u % nL;
  return g * n + std::min(n, j << (c.L - l));
}
}  // namespace

// What a team's threads share when one of them fails: every thread must still meet every barrier
// of the forward (OpenMP's rule; a thread that left early would leave the others waiting at a
// block's barrier for ever), so after a failure the threads skip their work, keep to the
// barriers, and forward rethrows the first exception after the join.
struct Vit::TeamFailure {
  std::atomic<bool> failed{false};
  std::exception_ptr first;
  // Runs f unless a thread has failed; a throw from f is recorded instead of propagated.
  template <class F>
  void run(F&& f) {
    if (failed.load(std::memory_order_relaxed)) return;
    try {
      f();
    } catch (...) {
#pragma omp critical(harvit_vit_team_failure)
      if (!first) first = std::current_exception();
      failed.store(true);
    }
  }
};

void Vit::forward_blocks(int64_t u0, int64_t u1, TeamFailure* team, stages::Clock* clock) {
  const auto& c = cfg_;
  const int64_t HA = c.H * c.A, D = c.D;
  const float* w = params_.values();
  auto mark = [&](const char* name, int64_t l) {
    if (clock) clock->mark(name, l);
  };
  const float* h = h0_.data() + unit_row(c, 0, u0) * D;
  for (int64_t l = 0; l < c.L; ++l) {
    Block& p = blocks_[l];
    BlockActs& a = acts_[l];
    const int64_t n = c.tokens(l);
    // this call's rows of block l and of its output: one range of rows in every buffer
    const int64_t r0 = unit_row(c, l, u0), R = unit_row(c, l, u1) - r0;
    const int64_t r2 = unit_row(c, l + 1, u0), R2 = unit_row(c, l + 1, u1) - r2;
    // h (G,n,D) -> q|k|v (G,n,3HA) -> z (G,n,HA) -> y = relu(h + LN(z Wo^T + bo)) (G,n,D)
    float* qkv = a.qkv.data();
    float* z = a.z.data();
    float* o = a.o.data() + r0 * D;
    float* y = a.y.data() + r0 * D;
    float* u = a.u.data() + r2 * D;
    float* out = a.out.data() + r2 * D;
    auto step = [&](auto&& f) {
      if (team)
        team->run(f);
      else
        f();
    };
    step([&] {
      p.qkv.forward(qkv + r0 * 3 * HA, h, w, R);
      mark("block q|k|v", l);
    });
    if (team) {
      // a group's queries need every key and value of the group, and a group's rows may be
      // shared with a neighbouring thread: the one barrier of the block
#pragma omp barrier
      mark("block barrier", l);
    }
    step([&] {
      if (team) {
        for (int64_t g = r0 / n; g * n < r0 + R; ++g) {  // the groups these rows touch, in part or whole
          const int64_t i0 = std::max(r0, g * n) - g * n, i1 = std::min(r0 + R, (g + 1) * n) - g * n;
          for (int64_t hh = 0; hh < c.H; ++hh)
            attention_forward_rows(z, a.att.data(), qkv, qkv + HA, qkv + 2 * HA, n, c.H, c.A, 3 * HA, g, hh, i0, i1);
        }
      } else {  // whole groups (r0 and R are), on the pool
        attention_forward(z + r0 * HA, a.att.data() + r0 / n * c.H * n * n, qkv + r0 * 3 * HA,
                          qkv + r0 * 3 * HA + HA, qkv + r0 * 3 * HA + 2 * HA, R / n, n, c.H, c.A, 3 * HA);
      }
      mark("block attention", l);
      p.o.forward(o, z + r0 * HA, w, R);
      mark("block attention out", l);
      layernorm_forward(y, a.mean1.data() + r0, a.rstd1.data() + r0, o, w + p.g1, w + p.b1, R, D, h, true);
      // y (G,n,D) -> cat (G,n2,2D) -> out = relu(LN(cat Wm^T + bm)) (G,n2,D); for even n, cat is
      // y's own memory (a token pair is adjacent), only odd n needs a padded copy
      const float* cat = a.y.data() + r2 * 2 * D;
      if (n % 2) {
        cat = a.cat.data() + r2 * 2 * D;
        if (team)
          patch_merge_forward_rows(a.cat.data(), a.y.data(), n, D, r2, r2 + R2);
        else  // whole groups, on the pool
          patch_merge_forward(a.cat.data() + r2 * 2 * D, y, R / n, n, D);
      }
      mark("block LayerNorm 1 (+ merge input)", l);
      p.merge.forward(u, cat, w, R2);
      mark("block patch merge", l);
      layernorm_forward(out, a.mean2.data() + r2, a.rstd2.data() + r2, u, w + p.g2, w + p.b2, R2, D, nullptr, true);
      mark("block LayerNorm 2", l);
    });
    h = out;
  }
}

int Vit::team_threads(int64_t B) const {
  // Inference: each thread takes one contiguous share of the token rows through every block on its
  // own (serial mode: its rows stay on its core; weights are read, never written), groups (window,
  // axis) split only at last-level token boundaries so that a merge's token pairs stay on one
  // thread; the only sharing is a group's keys and values, behind one barrier per block. The
  // stage-by-stage pool (a fork and join per stage, each stage split its own way) lost ~30 % of
  // the ideal two-thread speed-up at batch 1 (docs/performance.md, sessions 8 and 9). int8 runs as
  // a team at every batch size (measured: batch 1 0.35 -> 0.29 ms, batch 64 3,500 -> 4,100
  // windows/s, batch 256 the same or better); fp32 up to kTeamMaxRowsFp32 rows (batch 1-10: 10-20 %
  // faster; at batch 64-256 oneDNN's sgemm over all rows is as fast: each thread of a team reads
  // every fp32 weight). Training keeps the stage-parallel path (bf16 keeps per-layer state; fp32
  // training packs no panels). An int8 model is for inference whether or not prepare_inference
  // was called.
  if (!(inference_ || precision_ == Precision::Int8) || precision_ == Precision::Bf16 || serial_mode() ||
      cfg_.L == 0)
    return 1;
  const int64_t G = B * cfg_.M;
  if (omp_in_parallel()) return 1;
  if (precision_ == Precision::Fp32 && G * cfg_.N() > kTeamMaxRowsFp32) return 1;
  const int t = static_cast<int>(std::min<int64_t>(num_threads(), G * cfg_.tokens(cfg_.L)));
  return t >= 2 ? t : 1;
}

const float* Vit::forward(const float* x, int64_t B) {
  ensure_batch(B);
  stages::Clock clock;  // bench_infer --stages
  const auto& c = cfg_;
  const float* w = params_.values();
  const int64_t units = B * c.M * c.tokens(c.L);
  const int threads = team_threads(B);
  if (threads > 1) {
    for (Block& p : blocks_)
      for (Linear* l : {&p.qkv, &p.o, &p.merge}) l->pack_now(w);  // before the threads share them
    TeamFailure failure;
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t u0 = units * t / T, u1 = units * (t + 1) / T;
      SerialScope serial;
      failure.run([&] {  // x (B,1,T,M) -> h0 (B,M,N,D): this thread's rows
        patch_embed_forward_rows(h0_.data(), patches_.data(), x, w + pe_w_, w + pe_b_, w + pos_, c.T, c.M, c.P, c.D,
                                 unit_row(c, 0, u0), unit_row(c, 0, u1));
        if (t == 0) clock.mark("patch embedding");
      });
      forward_blocks(u0, u1, &failure, t == 0 ? &clock : nullptr);
    }
    if (failure.first) std::rethrow_exception(failure.first);
    clock.mark("blocks: join");
  } else {
    // x (B,1,T,M) -> h0 (B,M,N,D)
    patch_embed_forward(h0_.data(), patches_.data(), x, w + pe_w_, w + pe_b_, w + pos_, B, c.T, c.M, c.P, c.D);
    clock.mark("patch embedding");
    forward_blocks(0, units, nullptr, &clock);
  }
  const float* h = c.L ? acts_[c.L - 1].out.data() : h0_.data();
  // flatten (B,M,nL,D) -> (B,F) is the same memory; dense tower -> logits (B,C)
  d0_.forward(a1_.data(), h, w, B);
  clock.mark("dense_tower.0");
  layernorm_forward(r_.data(), mean_h_.data(), rstd_h_.data(), a1_.data(), w + d1g_, w + d1b_, B,
                    c.hidden, nullptr, true);
  d3_.forward(logits_.data(), r_.data(), w, B);
  clock.mark("head LayerNorm + dense_tower.3");
  logits_ptr_ = logits_.data();
  return logits_ptr_;
}

const float* Vit::attention(int64_t l) const {
  if (B_ == 0) fail("Vit::attention called before forward");
  if (l < 0 || l >= cfg_.L)
    fail("Vit::attention: block " + std::to_string(l) + " does not exist (the model has " + std::to_string(cfg_.L) +
         " blocks)");
  return acts_[l].att.data();
}

void Vit::backward_from_logits(const float* dlogits) {
  if (B_ == 0) fail("Vit::backward called before forward");
  const auto& c = cfg_;
  const int64_t B = B_, HA = c.H * c.A, G = B * c.M, D = c.D;
  const float* w = params_.values();
  float* gr = params_.grads();
  // Parameter gradients accumulate; activation gradients with one producer are overwritten
  // (accumulate = false), so no activation-sized buffer is zeroed.
  // dense tower
  const float* hL = c.L ? acts_[c.L - 1].out.data() : h0_.data();
  if (precision_ == Precision::Int8) fail("an int8 ViT is for inference only: train the fp32 (or bf16) model");
  ensure_grad_buffers();
  d3_.backward(dr_.data(), gr, dlogits, r_.data(), w, B, false);
  relu_backward(dtmp_.data(), dr_.data(), r_.data(), B * c.hidden, false);
  layernorm_backward(da1_.data(), gr + d1g_, gr + d1b_, dtmp_.data(), a1_.data(), mean_h_.data(),
                     rstd_h_.data(), w + d1g_, B, c.hidden, false);
  d0_.backward(dh_[c.L].data(), gr, da1_.data(), hL, w, B, false);
  stage_done(0);  // the dense tower's gradients are final
  for (int64_t l = c.L - 1; l >= 0; --l) {
    Block& p = blocks_[l];
    BlockActs& a = acts_[l];
    const int64_t n = c.tokens(l), R = G * n, R2 = G * c.tokens(l + 1);
    const float* h = l ? acts_[l - 1].out.data() : h0_.data();
    const float* dout = dh_[l + 1].data();
    // out = relu(LN(u)): dout -> du
    const bool odd = n % 2;
    float* du = odd ? dy_.data() : dcat_.data();
    relu_backward(dtmp_.data(), dout, a.out.data(), R2 * D, false);
    layernorm_backward(du, gr + p.g2, gr + p.b2, dtmp_.data(), a.u.data(), a.mean2.data(),
                       a.rstd2.data(), w + p.g2, R2, D, false);
    // u = cat Wm^T + bm -> dcat -> dy: for even n dcat is dy (same memory layout), for odd n the
    // padded token's gradient is dropped
    if (odd) {
      p.merge.backward(dcat_.data(), gr, du, a.cat.data(), w, R2, false);
      patch_merge_backward(dy_.data(), dcat_.data(), G, n, D, false);
    } else {
      p.merge.backward(dy_.data(), gr, du, a.y.data(), w, R2, false);
    }
    // y = relu(h + LN(o)): dpre = dy * (y > 0) goes to the residual (dh) and through LN
    float* dh = dh_[l].data();
    relu_backward(dh, dy_.data(), a.y.data(), R * D, false);
    layernorm_backward(dy_.data(), gr + p.g1, gr + p.b1, dh, a.o.data(), a.mean1.data(),
                       a.rstd1.data(), w + p.g1, R, D, false);  // dy_ now holds do
    p.o.backward(dz_.data(), gr, dy_.data(), a.z.data(), w, R, false);
    const float* qkv = a.qkv.data();
    float* dqkv = dqkv_.data();
    attention_backward(dqkv, dqkv + HA, dqkv + 2 * HA, dz_.data(), a.att.data(), qkv,
                       qkv + HA, qkv + 2 * HA, G, n, c.H, c.A, 3 * HA);
    // the fused projection: dh += dqkv Wqkv (the residual's share is already in dh)
    p.qkv.backward(dh, gr, dqkv, h, w, R);
    stage_done(static_cast<size_t>(c.L - l));  // block l's
  }
  patch_embed_backward(gr + pe_w_, gr + pe_b_, gr + pos_, dh_[0].data(), patches_.data(), B, c.M,
                       c.N(), c.P, D);
  stage_done(static_cast<size_t>(c.L + 1));
}

}  // namespace harvit::nn
