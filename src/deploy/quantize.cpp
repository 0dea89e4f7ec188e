#include "deploy/quantize.h"

#include <dnnl.h>

#include <algorithm>
#include <cmath>

#include "core/tensor.h"
#include "nn/layers.h"

namespace harvit::deploy {

namespace {
constexpr int kWeightMax = 63;  // 7-bit weights: no int16 saturation in non-VNNI u8 x s8 kernels
constexpr int64_t kMinParallel = 1 << 15;  // smaller loops stay on the calling thread
}

Int8Linear::Int8Linear(const float* w, const float* b, int64_t IN, int64_t OUT)
    : IN_(IN), OUT_(OUT), w8_(IN * OUT), wscale_(OUT), bias_(b, b + OUT) {
  for (int64_t o = 0; o < OUT; ++o) {
    const float* row = w + o * IN;
    float mx = 0.0f;
    for (int64_t i = 0; i < IN; ++i) mx = std::max(mx, std::fabs(row[i]));
    const float s = mx > 0.0f ? mx / kWeightMax : 1.0f;
    wscale_[o] = s;
    for (int64_t i = 0; i < IN; ++i) {
      const float q = std::nearbyint(row[i] / s);
      w8_[o * IN + i] = static_cast<int8_t>(std::clamp(q, -float(kWeightMax), float(kWeightMax)));
    }
  }
}

void Int8Linear::forward(float* out, const float* inp, int64_t R) {
  const int64_t IN = IN_, OUT = OUT_;
  if (static_cast<int64_t>(a8_.size()) < R * IN) {
    a8_.resize(R * IN);
    ascale_.resize(R);
    acc_.resize(R * OUT);
  }
  // Is the whole input non-negative? Then u8 covers [0, max] with all 256 levels.
  bool nonneg = true;
#pragma omp parallel for reduction(&& : nonneg) schedule(static) if(R * IN >= kMinParallel)
  for (int64_t i = 0; i < R * IN; ++i) nonneg = nonneg && inp[i] >= 0.0f;
  const uint8_t zp = nonneg ? 0 : 128;
  const float levels = nonneg ? 255.0f : 127.0f;
#pragma omp parallel for schedule(static) if(R * IN >= kMinParallel)
  for (int64_t r = 0; r < R; ++r) {
    const float* x = inp + r * IN;
    float mx = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int64_t i = 0; i < IN; ++i) mx = std::max(mx, std::fabs(x[i]));
    const float s = mx > 0.0f ? mx / levels : 1.0f, inv = 1.0f / s;
    ascale_[r] = s;
    uint8_t* q = a8_.data() + r * IN;
#pragma omp simd
    for (int64_t i = 0; i < IN; ++i) q[i] = static_cast<uint8_t>(std::nearbyint(x[i] * inv) + zp);
  }
  const int32_t co = 0;
  const dnnl_status_t st = dnnl_gemm_u8s8s32('N', 'T', 'F', R, OUT, IN, 1.0f, a8_.data(), IN, zp, w8_.data(), IN, 0,
                                             0.0f, acc_.data(), OUT, &co);
  if (st != dnnl_success) fail("oneDNN int8 GEMM failed (status " + std::to_string(static_cast<int>(st)) + ")");
#pragma omp parallel for schedule(static) if(R * OUT >= kMinParallel)
  for (int64_t r = 0; r < R; ++r) {
    const int32_t* a = acc_.data() + r * OUT;
    float* o = out + r * OUT;
    const float s = ascale_[r];
#pragma omp simd
    for (int64_t c = 0; c < OUT; ++c) o[c] = s * wscale_[c] * static_cast<float>(a[c]) + bias_[c];
  }
}

Int8Vit::Int8Vit(const nn::Model& fp32) {
  if (fp32.kind() != "vit") fail("int8 inference is implemented for the ViT only, not for a " + fp32.kind());
  cfg_ = nn::VitConfig::from_json(fp32.config_json());
  // Keep the fp32 values (checkpoint names, summaries); the int8 layers copy what they need.
  params_ = fp32.params();
  const int64_t D = cfg_.D, HA = cfg_.H * cfg_.A;
  auto v = [&](const std::string& name) { return params_.value(name); };
  pos_ = v("position_embedding");
  pe_w_ = v("patch_conv.weight");
  pe_b_ = v("patch_conv.bias");
  for (int64_t l = 0; l < cfg_.L; ++l) {
    const std::string p = "msa_layer." + std::to_string(l) + ".";
    std::vector<float> w(3 * HA * D), b(3 * HA);
    const char* names[3] = {"query.", "key.", "value."};
    for (int i = 0; i < 3; ++i) {
      std::copy_n(v(p + names[i] + "weight"), HA * D, w.begin() + i * HA * D);
      std::copy_n(v(p + names[i] + "bias"), HA, b.begin() + i * HA);
    }
    Block blk{Int8Linear(w.data(), b.data(), D, 3 * HA),
              Int8Linear(v(p + "att_mlp.0.weight"), v(p + "att_mlp.0.bias"), HA, D),
              Int8Linear(v(p + "downsample_mlp.0.weight"), v(p + "downsample_mlp.0.bias"), 2 * D, D),
              v(p + "att_mlp.1.weight"), v(p + "att_mlp.1.bias"), v(p + "downsample_mlp.1.weight"),
              v(p + "downsample_mlp.1.bias")};
    blocks_.push_back(std::move(blk));
  }
  d0_ = Int8Linear(v("dense_tower.0.weight"), v("dense_tower.0.bias"), cfg_.F(), cfg_.hidden);
  d1g_ = v("dense_tower.1.weight");
  d1b_ = v("dense_tower.1.bias");
  d3w_ = v("dense_tower.3.weight");
  d3b_ = v("dense_tower.3.bias");
}

nlohmann::json Int8Vit::config_json() const { return cfg_.to_json(); }

void Int8Vit::backward_from_logits(const float*) { fail("an int8 model is for inference only: train the fp32 model"); }

const float* Int8Vit::forward(const float* x, int64_t B) {
  set_batch(B);
  const auto& c = cfg_;
  const int64_t HA = c.H * c.A, G = B * c.M, D = c.D, R0 = G * c.N();
  if (B > capacity_) {  // every buffer sized for block 0, the largest; reused by later blocks
    capacity_ = B;
    patches_.resize(R0 * c.P);
    h_.resize(R0 * D); qkv_.resize(R0 * 3 * HA); att_.resize(G * c.H * c.N() * c.N());
    z_.resize(R0 * HA); o_.resize(R0 * D); y_.resize(R0 * D); cat_.resize((R0 + G) * D);
    u_.resize(R0 * D); mean_.resize(R0); rstd_.resize(R0);
    a1_.resize(B * c.hidden); r_.resize(B * c.hidden); logits_.resize(B * c.C);
  }
  nn::patch_embed_forward(h_.data(), patches_.data(), x, pe_w_, pe_b_, pos_, B, c.T, c.M, c.P, D);
  for (int64_t l = 0; l < c.L; ++l) {
    Block& p = blocks_[l];
    const int64_t n = c.tokens(l), R = G * n, R2 = G * c.tokens(l + 1);
    float* qkv = qkv_.data();
    p.qkv.forward(qkv, h_.data(), R);
    nn::attention_forward(z_.data(), att_.data(), qkv, qkv + HA, qkv + 2 * HA, G, n, c.H, c.A, 3 * HA);
    p.o.forward(o_.data(), z_.data(), R);
    nn::layernorm_forward(y_.data(), mean_.data(), rstd_.data(), o_.data(), p.g1, p.b1, R, D, h_.data(), true);
    nn::patch_merge_forward(cat_.data(), y_.data(), G, n, D);
    p.merge.forward(u_.data(), cat_.data(), R2);
    nn::layernorm_forward(h_.data(), mean_.data(), rstd_.data(), u_.data(), p.g2, p.b2, R2, D, nullptr, true);
  }
  d0_.forward(a1_.data(), h_.data(), B);
  nn::layernorm_forward(r_.data(), mean_.data(), rstd_.data(), a1_.data(), d1g_, d1b_, B, c.hidden, nullptr, true);
  nn::linear_forward(logits_.data(), r_.data(), d3w_, d3b_, B, c.hidden, c.C);
  logits_ptr_ = logits_.data();
  return logits_ptr_;
}

std::unique_ptr<nn::Model> convert_precision(const nn::Model& model, const std::string& precision) {
  if (precision == "fp32") return nullptr;
  if (precision == "int8") return std::make_unique<Int8Vit>(model);
  fail("unknown precision \"" + precision + "\" (fp32 | int8)");
}

}  // namespace harvit::deploy
