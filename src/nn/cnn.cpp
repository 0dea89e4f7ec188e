#include "nn/cnn.h"

#include <algorithm>
#include <cstring>

#include "core/threading.h"
#include "nn/layers.h"

namespace harvit::nn {

namespace {
// Loops over fewer elements run on the calling thread (as in layers.cpp).
constexpr int64_t kMinParallel = 1 << 15;
}  // namespace

using json = nlohmann::json;

void CnnConfig::validate() const {
  if (T <= 0 || M <= 0 || C < 2) fail("invalid CNN config: T, M must be positive and C >= 2");
  if (channels.empty()) fail("invalid CNN config: no conv layers");
  for (auto c : channels)
    if (c <= 0) fail("invalid CNN config: channel counts must be positive");
  if (kernel <= 0 || kernel % 2 == 0) fail("invalid CNN config: kernel must be odd and positive");
  if (length(channels.size() - 1) < 1)
    fail("invalid CNN config: T=" + std::to_string(T) + " is too short for " + std::to_string(channels.size()) + " conv layers with pooling");
}

int64_t CnnConfig::length(size_t layer) const {
  int64_t t = T;
  for (size_t i = 0; i < layer; ++i) t /= 2;
  return t;
}

json CnnConfig::to_json() const {
  return {{"model", "cnn"}, {"T", T}, {"M", M}, {"C", C}, {"channels", channels}, {"kernel", kernel}};
}

CnnConfig CnnConfig::from_json(const json& j) {
  CnnConfig c;
  // Every field must be a JSON integer: converting a float such as 1e300 to int64 is undefined.
  auto integer = [](const json& v, const std::string& what) {
    if (!v.is_number_integer()) fail("CNN config: \"" + what + "\" must be an integer");
    return v.get<int64_t>();
  };
  try {
    c.T = integer(j.at("T"), "T");
    c.M = integer(j.at("M"), "M");
    c.C = integer(j.at("C"), "C");
    const json& ch = j.at("channels");
    if (!ch.is_array()) fail("CNN config: \"channels\" must be a list of integers");
    c.channels.clear();
    for (const json& v : ch) c.channels.push_back(integer(v, "channels"));
    c.kernel = integer(j.at("kernel"), "kernel");
  } catch (const json::exception& e) {
    fail(std::string("CNN config: ") + e.what());
  }
  c.validate();
  return c;
}

// ---- layers ----------------------------------------------------------------------------------

void conv1d_im2col(float* cols, const float* x, int64_t B, int64_t T, int64_t Cin, int64_t K) {
  // x (B, T, Cin) -> cols (B*T, Cin*K): cols[(b,t), ci*K + j] = x[b, t + j - K/2, ci] (0 outside)
  const int64_t pad = K / 2;
  parallel_for_2d(B, T, B * T * Cin * K >= kMinParallel, [&](int64_t bb, int64_t t) {
    float* c = cols + (bb * T + t) * Cin * K;
    for (int64_t ci = 0; ci < Cin; ++ci)
      for (int64_t j = 0; j < K; ++j) {
        const int64_t s = t + j - pad;
        c[ci * K + j] = s >= 0 && s < T ? x[(bb * T + s) * Cin + ci] : 0.0f;
      }
  });
}

void conv1d_col2im(float* dx, const float* dcols, int64_t B, int64_t T, int64_t Cin, int64_t K) {
  // every (t, j) that read x[b, s, ci] returns its gradient there. Parallel over (b, s) so each
  // output element has one writer.
  const int64_t pad = K / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t s = 0; s < T; ++s)
      for (int64_t ci = 0; ci < Cin; ++ci) {
        float acc = 0.0f;
        for (int64_t j = 0; j < K; ++j) {
          const int64_t t = s - j + pad;
          if (t >= 0 && t < T) acc += dcols[(bb * T + t) * Cin * K + ci * K + j];
        }
        dx[(bb * T + s) * Cin + ci] += acc;
      }
}

void conv1d_forward(float* out, float* cols, const float* x, const float* w, const float* b, int64_t B,
                    int64_t T, int64_t Cin, int64_t Cout, int64_t K) {
  conv1d_im2col(cols, x, B, T, Cin, K);
  // out (B*T, Cout) = cols w^T + b, with w (Cout, Cin, K) seen as (Cout, Cin*K)
  linear_forward(out, cols, w, b, B * T, Cin * K, Cout);
}

void conv1d_backward(float* dx, float* dw, float* db, float* dcols, const float* dout, const float* cols,
                     const float* w, int64_t B, int64_t T, int64_t Cin, int64_t Cout, int64_t K) {
  linear_backward(dx ? dcols : nullptr, dw, db, dout, cols, w, B * T, Cin * K, Cout, false);
  if (dx) conv1d_col2im(dx, dcols, B, T, Cin, K);
}

void maxpool2_forward(float* out, uint8_t* arg, const float* x, int64_t B, int64_t T, int64_t Cc) {
  const int64_t T2 = T / 2;
  parallel_for_2d(B, T2, B * T * Cc >= kMinParallel, [&](int64_t bb, int64_t t) {
      for (int64_t c = 0; c < Cc; ++c) {
        const float a = x[(bb * T + 2 * t) * Cc + c], b = x[(bb * T + 2 * t + 1) * Cc + c];
        const int64_t o = (bb * T2 + t) * Cc + c;
        out[o] = b > a ? b : a;  // ties go to the first element, as PyTorch
        arg[o] = b > a;
      }
  });
}

void maxpool2_backward(float* dx, const float* dout, const uint8_t* arg, int64_t B, int64_t T, int64_t Cc) {
  const int64_t T2 = T / 2;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t t = 0; t < T2; ++t)
      for (int64_t c = 0; c < Cc; ++c) {
        const int64_t o = (bb * T2 + t) * Cc + c;
        dx[(bb * T + 2 * t + arg[o]) * Cc + c] += dout[o];
      }
}

void avgpool_time_forward(float* out, const float* x, int64_t B, int64_t T, int64_t Cc) {
  parallel_for(B, B * T * Cc >= kMinParallel, [&](int64_t bb) {
    float* o = out + bb * Cc;
    std::fill(o, o + Cc, 0.0f);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < Cc; ++c) o[c] += x[(bb * T + t) * Cc + c];
    for (int64_t c = 0; c < Cc; ++c) o[c] /= static_cast<float>(T);
  });
}

void avgpool_time_backward(float* dx, const float* dout, int64_t B, int64_t T, int64_t Cc) {
  const float inv = 1.0f / static_cast<float>(T);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < Cc; ++c) dx[(bb * T + t) * Cc + c] += dout[bb * Cc + c] * inv;
}

void relu_forward(float* out, const float* x, int64_t n) {
  constexpr int64_t kChunk = 4096;  // chunks of a vectorised loop, shared among the threads
  parallel_for((n + kChunk - 1) / kChunk, n >= kMinParallel, [&](int64_t k) {
    const int64_t i1 = std::min(n, (k + 1) * kChunk);
#pragma omp simd
    for (int64_t i = k * kChunk; i < i1; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
  });
}

// ---- model -----------------------------------------------------------------------------------

Cnn::Cnn(const CnnConfig& cfg) : cfg_(cfg) {
  cfg_.validate();
  int64_t cin = cfg_.M;
  for (size_t i = 0; i < cfg_.channels.size(); ++i) {
    const std::string p = "convs." + std::to_string(i) + ".";
    Layer l;
    l.w = params_.add(p + "weight", {cfg_.channels[i], cin, cfg_.kernel}, Init::Uniform, cin * cfg_.kernel);
    l.b = params_.add(p + "bias", {cfg_.channels[i]}, Init::Uniform, cin * cfg_.kernel);
    l.lin = Linear(l.w, l.b, cin * cfg_.kernel, cfg_.channels[i]);
    layers_.push_back(std::move(l));
    cin = cfg_.channels[i];
  }
  fc_w_ = params_.add("fc.weight", {cfg_.C, cin}, Init::Uniform, cin);
  fc_b_ = params_.add("fc.bias", {cfg_.C}, Init::Uniform, cin);
  params_.finalize();
  Rng rng(0);
  params_.init_default(rng);
}

std::vector<LayerSummary> Cnn::summary() const {
  std::vector<LayerSummary> rows;
  int64_t cin = cfg_.M;
  const size_t L = cfg_.channels.size();
  for (size_t i = 0; i < L; ++i) {
    const int64_t t = cfg_.length(i), co = cfg_.channels[i];
    const bool pool = i + 1 < L;
    rows.push_back({"convs." + std::to_string(i) + (pool ? " (+ReLU, maxpool 2)" : " (+ReLU)"),
                    {1, pool ? t / 2 : t, co}, co * cin * cfg_.kernel + co, t * co * cin * cfg_.kernel, 0});
    cin = co;
  }
  rows.push_back({"mean over time", {1, cin}, 0, 0, 0});
  rows.push_back({"fc", {1, cfg_.C}, cin * cfg_.C + cfg_.C, cin * cfg_.C, 0});
  return rows;
}

const float* Cnn::forward(const float* x, int64_t B) {
  set_batch(B);
  const size_t L = layers_.size();
  const int64_t K = cfg_.kernel;
  if (B > capacity_) {
    capacity_ = B;
    int64_t cin = cfg_.M, maxcols = 0, maxact = B * cfg_.T * cfg_.M;
    for (size_t i = 0; i < L; ++i) {
      const int64_t t = cfg_.length(i), co = cfg_.channels[i];
      Layer& l = layers_[i];
      l.cols.assign(B * t * cin * K, 0.0f);
      l.pre.assign(B * t * co, 0.0f);
      l.act.assign(B * t * co, 0.0f);
      if (i + 1 < L) {
        l.pooled.assign(B * (t / 2) * co, 0.0f);
        l.arg.assign(B * (t / 2) * co, 0);
      }
      maxcols = std::max(maxcols, B * t * cin * K);
      maxact = std::max(maxact, B * t * co);
      cin = co;
    }
    feat_.assign(B * cin, 0.0f);
    dfeat_.assign(B * cin, 0.0f);
    logits_.assign(B * cfg_.C, 0.0f);
    dIn_.assign(maxact, 0.0f);
    dAct_.assign(maxact, 0.0f);
    dPre_.assign(maxact, 0.0f);
    dcols_.assign(maxcols, 0.0f);
  }
  const float* w = params_.values();
  const float* h = x;
  int64_t cin = cfg_.M;
  for (size_t i = 0; i < L; ++i) {
    Layer& l = layers_[i];
    const int64_t t = cfg_.length(i), co = cfg_.channels[i];
    conv1d_im2col(l.cols.data(), h, B, t, cin, K);
    l.lin.forward(l.pre.data(), l.cols.data(), w, B * t);  // the conv as a GEMM, in the layer's precision
    relu_forward(l.act.data(), l.pre.data(), B * t * co);
    if (i + 1 < L) {
      maxpool2_forward(l.pooled.data(), l.arg.data(), l.act.data(), B, t, co);
      h = l.pooled.data();
    } else {
      avgpool_time_forward(feat_.data(), l.act.data(), B, t, co);
    }
    cin = co;
  }
  linear_forward(logits_.data(), feat_.data(), w + fc_w_, w + fc_b_, B, cin, cfg_.C);
  logits_ptr_ = logits_.data();
  return logits_ptr_;
}

void Cnn::set_precision(Precision p) {
  if (p == Precision::Bf16) require_bf16();  // before any layer changes
  for (Layer& l : layers_) l.lin.set_precision(p, params_.values());
  precision_ = p;
}

void Cnn::params_changed() {
  for (Layer& l : layers_) l.lin.refresh_weights(params_.values());
}

void Cnn::prepare_inference() {
  for (Layer& l : layers_) l.lin.set_packed_inference(true);
}

void Cnn::backward_from_logits(const float* dlogits) {
  if (B_ == 0) fail("Cnn::backward called before forward");
  if (precision_ == Precision::Int8) fail("an int8 CNN is for inference only: train the fp32 (or bf16) model");
  const int64_t B = B_, K = cfg_.kernel;
  const size_t L = layers_.size();
  const float* w = params_.values();
  float* g = params_.grads();
  const int64_t clast = cfg_.channels.back();
  linear_backward(dfeat_.data(), g + fc_w_, g + fc_b_, dlogits, feat_.data(), w + fc_w_, B, clast, cfg_.C, false);
  // Per layer, from the last: d(pooled) in dIn_ -> d(act) -> d(pre) -> d(input) back into dIn_.
  for (size_t ii = L; ii-- > 0;) {
    Layer& l = layers_[ii];
    const int64_t t = cfg_.length(ii), co = cfg_.channels[ii], cin = ii ? cfg_.channels[ii - 1] : cfg_.M;
    const int64_t n = B * t * co;
    std::fill(dAct_.begin(), dAct_.begin() + n, 0.0f);
    if (ii + 1 == L) avgpool_time_backward(dAct_.data(), dfeat_.data(), B, t, co);
    else maxpool2_backward(dAct_.data(), dIn_.data(), l.arg.data(), B, t, co);
    relu_backward(dPre_.data(), dAct_.data(), l.act.data(), n, false);
    float* dx = nullptr;
    if (ii > 0) {  // the input of conv 0 is data: no gradient needed
      dx = dIn_.data();
      std::fill(dIn_.begin(), dIn_.begin() + B * t * cin, 0.0f);
    }
    l.lin.backward(dx ? dcols_.data() : nullptr, g, dPre_.data(), l.cols.data(), w, B * t, false);
    if (dx) conv1d_col2im(dx, dcols_.data(), B, t, cin, K);
  }
}

}  // namespace harvit::nn
