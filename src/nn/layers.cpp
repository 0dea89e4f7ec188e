#include "nn/layers.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/gemm.h"
#include "core/tensor.h"

namespace harvit::nn {

namespace {
constexpr float kLnEps = 1e-5f;
constexpr int64_t kColBlock = 16;  // 64-byte column chunks for column-parallel reductions
// Loops over fewer elements run on the calling thread: waking the pool costs more than they do
// (batch-1 inference: 96 token rows of 256).
constexpr int64_t kMinParallel = 1 << 15;

}  // namespace

void colsum_accumulate(float* out, const float* X, int64_t R, int64_t Cn) {
  // Column chunks in parallel, rows in order: deterministic whatever the thread count.
  const int64_t nblk = (Cn + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if(R * Cn >= kMinParallel)
  for (int64_t blk = 0; blk < nblk; ++blk) {
    const int64_t c0 = blk * kColBlock, c1 = std::min(Cn, c0 + kColBlock);
    float acc[kColBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const float* row = X + r * Cn;
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] += row[c];
    }
    for (int64_t c = c0; c < c1; ++c) out[c] += acc[c - c0];
  }
}

// ---- linear ----------------------------------------------------------------------------------

void linear_forward(float* out, const float* inp, const float* w, const float* b, int64_t R,
                    int64_t IN, int64_t OUT) {
  // inp (R, IN), w (OUT, IN), b (OUT) -> out (R, OUT)
  if (b) {
#pragma omp parallel for schedule(static) if(R * OUT >= kMinParallel)
    for (int64_t r = 0; r < R; ++r) std::memcpy(out + r * OUT, b, OUT * sizeof(float));
  }
  gemm('N', 'T', R, OUT, IN, 1.0f, inp, IN, w, IN, b ? 1.0f : 0.0f, out, OUT);
}

void linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                     const float* w, int64_t R, int64_t IN, int64_t OUT, bool accumulate) {
  // dout (R, OUT); dinp (R, IN) (+)= dout w; dw (OUT, IN) += dout^T inp; db (OUT) += colsum(dout)
  if (dinp) gemm('N', 'N', R, IN, OUT, 1.0f, dout, OUT, w, IN, accumulate ? 1.0f : 0.0f, dinp, IN);
  if (dw) gemm('T', 'N', OUT, IN, R, 1.0f, dout, OUT, inp, IN, 1.0f, dw, IN);
  if (db) colsum_accumulate(db, dout, R, OUT);
}

// ---- LayerNorm -------------------------------------------------------------------------------

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* g,
                       const float* b, int64_t R, int64_t Dn, const float* residual, bool relu) {
  // inp (R, Dn) -> out (R, Dn) = act(residual + LN(inp)); mean, rstd (R)
#pragma omp parallel for schedule(static) if(R * Dn >= kMinParallel)
  for (int64_t r = 0; r < R; ++r) {
    const float* x = inp + r * Dn;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < Dn; ++i) s += x[i];
    const float m = s / static_cast<float>(Dn);
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < Dn; ++i) v += (x[i] - m) * (x[i] - m);
    const float rs = 1.0f / std::sqrt(v / static_cast<float>(Dn) + kLnEps);
    mean[r] = m;
    rstd[r] = rs;
    float* o = out + r * Dn;
    const float* res = residual ? residual + r * Dn : nullptr;
    for (int64_t i = 0; i < Dn; ++i) {
      float y = (x[i] - m) * rs * g[i] + b[i];
      if (res) y += res[i];
      if (relu) y = y > 0.0f ? y : 0.0f;
      o[i] = y;
    }
  }
}

void layernorm_backward(float* dinp, float* dg, float* db, const float* dout, const float* inp,
                        const float* mean, const float* rstd, const float* g, int64_t R,
                        int64_t Dn, bool accumulate) {
  // dout (R, Dn): gradient of LN's output. dinp (R, Dn) +=; dg, db (Dn) +=
  if (dinp) {
#pragma omp parallel for schedule(static) if(R * Dn >= kMinParallel)
    for (int64_t r = 0; r < R; ++r) {
      const float* x = inp + r * Dn;
      const float* dy = dout + r * Dn;
      const float m = mean[r], rs = rstd[r];
      // dxhat = dy * g; dx = rs * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
      float s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s1, s2)
      for (int64_t i = 0; i < Dn; ++i) {
        const float dxh = dy[i] * g[i];
        s1 += dxh;
        s2 += dxh * (x[i] - m) * rs;
      }
      s1 /= static_cast<float>(Dn);
      s2 /= static_cast<float>(Dn);
      float* dx = dinp + r * Dn;
      if (accumulate) {
#pragma omp simd
        for (int64_t i = 0; i < Dn; ++i) dx[i] += rs * (dy[i] * g[i] - s1 - (x[i] - m) * rs * s2);
      } else {
#pragma omp simd
        for (int64_t i = 0; i < Dn; ++i) dx[i] = rs * (dy[i] * g[i] - s1 - (x[i] - m) * rs * s2);
      }
    }
  }
  if (dg || db) {
    const int64_t nblk = (Dn + kColBlock - 1) / kColBlock;
#pragma omp parallel for schedule(static) if(R * Dn >= kMinParallel)
    for (int64_t blk = 0; blk < nblk; ++blk) {
      const int64_t c0 = blk * kColBlock, c1 = std::min(Dn, c0 + kColBlock);
      float ag[kColBlock] = {}, ab[kColBlock] = {};
      for (int64_t r = 0; r < R; ++r) {
        const float* x = inp + r * Dn;
        const float* dy = dout + r * Dn;
        const float m = mean[r], rs = rstd[r];
        for (int64_t c = c0; c < c1; ++c) {
          ag[c - c0] += dy[c] * (x[c] - m) * rs;
          ab[c - c0] += dy[c];
        }
      }
      for (int64_t c = c0; c < c1; ++c) {
        if (dg) dg[c] += ag[c - c0];
        if (db) db[c] += ab[c - c0];
      }
    }
  }
}

void relu_backward(float* dinp, const float* dout, const float* out, int64_t n, bool accumulate) {
  if (accumulate) {
#pragma omp parallel for simd schedule(static) if(n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
  } else {
#pragma omp parallel for simd schedule(static) if(n >= kMinParallel)
    for (int64_t i = 0; i < n; ++i) dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
  }
}

// ---- attention -------------------------------------------------------------------------------

namespace {
// Views of the attention operands as (G, H, rows, cols) for batched_matmul.
struct AttViews {
  MatStrides tok, tokT, z, sq, sqT;
  AttViews(int64_t n, int64_t H, int64_t A, int64_t ld)
      : tok{n * ld, A, ld, 1},           // q, k, v (G, n, H*A; rows ld apart) seen as (G, H, n, A)
        tokT{n * ld, A, 1, ld},          // the same, transposed: (G, H, A, n)
        z{n * H * A, A, H * A, 1},       // z, dz (G, n, H*A) contiguous, seen as (G, H, n, A)
        sq{H * n * n, n * n, n, 1},      // att (G, H, n, n)
        sqT{H * n * n, n * n, 1, n} {}   // att transposed
};
}  // namespace

void attention_forward(float* z, float* att, const float* q, const float* k, const float* v,
                       int64_t G, int64_t n, int64_t H, int64_t A, int64_t ld) {
  // q, k, v (G, n, H*A, rows ld apart); z (G, n, H*A); att (G, H, n, n)
  const AttViews w(n, H, A, ld);
  // att = q k^T / sqrt(A)
  batched_matmul(G, H, n, n, A, 1.0f / std::sqrt(static_cast<float>(A)), q, w.tok, k, w.tokT, att, w.sq, false);
  // softmax over the key index, one row per (g, h, i)
#pragma omp parallel for schedule(static) if(G * H * n * n >= kMinParallel)
  for (int64_t r = 0; r < G * H * n; ++r) {
    float* P = att + r * n;
    float mx = P[0];
    for (int64_t j = 1; j < n; ++j) mx = std::max(mx, P[j]);
    float sum = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      P[j] = std::exp(P[j] - mx);
      sum += P[j];
    }
    const float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; ++j) P[j] *= inv;
  }
  // z = att v, written straight into the heads-concatenated layout
  batched_matmul(G, H, n, A, n, 1.0f, att, w.sq, v, w.tok, z, w.z, false);
}

void attention_backward(float* dq, float* dk, float* dv, float* datt, const float* dz, const float* att,
                        const float* q, const float* k, const float* v, int64_t G, int64_t n,
                        int64_t H, int64_t A, int64_t ld) {
  // dz (G, n, H*A) -> dq, dk, dv (G, n, H*A, rows ld apart) =
  const AttViews w(n, H, A, ld);
  const float inv_sqrtA = 1.0f / std::sqrt(static_cast<float>(A));
  batched_matmul(G, H, n, n, A, 1.0f, dz, w.z, v, w.tokT, datt, w.sq, false);  // dP = dz v^T
  batched_matmul(G, H, n, A, n, 1.0f, att, w.sqT, dz, w.z, dv, w.tok, false);  // dv = P^T dz
  // softmax backward and the 1/sqrt(A) scale: dS = P * (dP - sum_j P dP) / sqrt(A), in place
#pragma omp parallel for schedule(static) if(G * H * n * n >= kMinParallel)
  for (int64_t r = 0; r < G * H * n; ++r) {
    const float* P = att + r * n;
    float* dP = datt + r * n;
    float dot = 0.0f;
    for (int64_t j = 0; j < n; ++j) dot += P[j] * dP[j];
    for (int64_t j = 0; j < n; ++j) dP[j] = P[j] * (dP[j] - dot) * inv_sqrtA;
  }
  batched_matmul(G, H, n, A, n, 1.0f, datt, w.sq, k, w.tok, dq, w.tok, false);   // dq = dS k
  batched_matmul(G, H, n, A, n, 1.0f, datt, w.sqT, q, w.tok, dk, w.tok, false);  // dk = dS^T q
}

// ---- patch merge -----------------------------------------------------------------------------

void patch_merge_forward(float* out, const float* inp, int64_t G, int64_t n, int64_t Dn) {
  // inp (G, n, Dn) -> out (G, ceil(n/2), 2*Dn). Token pairs are adjacent in memory, so each
  // output row is one contiguous copy; only the odd tail gets zeros.
  const int64_t n2 = (n + 1) / 2;
#pragma omp parallel for schedule(static) if(G * n * Dn >= kMinParallel)
  for (int64_t g = 0; g < G; ++g) {
    std::memcpy(out + g * n2 * 2 * Dn, inp + g * n * Dn, n * Dn * sizeof(float));
    if (n % 2) std::memset(out + (g * n2 * 2 + n) * Dn, 0, Dn * sizeof(float));
  }
}

void patch_merge_backward(float* dinp, const float* dout, int64_t G, int64_t n, int64_t Dn,
                          bool accumulate) {
  // dout (G, ceil(n/2), 2*Dn) -> dinp (G, n, Dn) (+)=
  const int64_t n2 = (n + 1) / 2;
#pragma omp parallel for schedule(static) if(G * n * Dn >= kMinParallel)
  for (int64_t g = 0; g < G; ++g) {
    const float* src = dout + g * n2 * 2 * Dn;
    float* dst = dinp + g * n * Dn;
    if (!accumulate) {
      std::memcpy(dst, src, n * Dn * sizeof(float));
      continue;
    }
#pragma omp simd
    for (int64_t i = 0; i < n * Dn; ++i) dst[i] += src[i];
  }
}

// ---- patch embedding -------------------------------------------------------------------------

void patch_embed_forward(float* out, float* patches, const float* x, const float* w, const float* b,
                         const float* pos, int64_t B, int64_t T, int64_t M, int64_t P, int64_t D) {
  // x (B, 1, T, M) -> patches (B, M, N, P) -> out (B, M, N, D)
  const int64_t N = T / P;
#pragma omp parallel for collapse(2) schedule(static) if(B * M * T >= kMinParallel)
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t nn = 0; nn < N; ++nn)
        for (int64_t p = 0; p < P; ++p)
          patches[((bb * M + m) * N + nn) * P + p] = x[(bb * T + nn * P + p) * M + m];
  const int64_t R = B * M * N;
  gemm('N', 'T', R, D, P, 1.0f, patches, P, w, P, 0.0f, out, D);
#pragma omp parallel for schedule(static) if(R * D >= kMinParallel)
  for (int64_t r = 0; r < R; ++r) {
    const float* pr = pos + (r % (M * N)) * D;
    float* o = out + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] += b[d] + pr[d];
  }
}

void patch_embed_backward(float* dw, float* db, float* dpos, const float* dout,
                          const float* patches, int64_t B, int64_t M, int64_t N, int64_t P,
                          int64_t D) {
  const int64_t R = B * M * N;
  gemm('T', 'N', D, P, R, 1.0f, dout, D, patches, P, 1.0f, dw, P);
  colsum_accumulate(db, dout, R, D);
  // dpos[mn] += sum over the batch, rows in batch order (deterministic)
#pragma omp parallel for schedule(static) if(B * M * N * D >= kMinParallel)
  for (int64_t mn = 0; mn < M * N; ++mn) {
    float* dp = dpos + mn * D;
    for (int64_t bb = 0; bb < B; ++bb) {
      const float* src = dout + (bb * M * N + mn) * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) dp[d] += src[d];
    }
  }
}

// ---- loss ------------------------------------------------------------------------------------

static double total_weight(const int32_t* labels, int64_t B, const LossOptions& opt) {
  if (!opt.class_weights) return static_cast<double>(B);
  double W = 0;
  for (int64_t b = 0; b < B; ++b) W += opt.class_weights[labels[b]];
  return W;
}

float softmax_cross_entropy_forward(float* probs, const float* logits, const int32_t* labels,
                                    int64_t B, int64_t C, const LossOptions& opt) {
  const double eps = opt.label_smoothing;
  double total = 0.0;
  for (int64_t bb = 0; bb < B; ++bb) {
    const int32_t y = labels[bb];
    if (y < 0 || y >= C)
      fail("label " + std::to_string(y) + " of sample " + std::to_string(bb) +
           " is outside [0, " + std::to_string(C) + ")");
    const float* l = logits + bb * C;
    float* p = probs + bb * C;
    float mx = l[0];
    for (int64_t c = 1; c < C; ++c) mx = std::max(mx, l[c]);
    double sum = 0.0;
    for (int64_t c = 0; c < C; ++c) sum += std::exp(static_cast<double>(l[c] - mx));
    const double lse = std::log(sum) + mx;
    for (int64_t c = 0; c < C; ++c) p[c] = static_cast<float>(std::exp(l[c] - lse));
    const double wy = opt.class_weights ? opt.class_weights[y] : 1.0;
    total += (1.0 - eps) * wy * (lse - l[y]);
    if (eps > 0) {
      double smooth = 0;
      for (int64_t c = 0; c < C; ++c) smooth += (opt.class_weights ? opt.class_weights[c] : 1.0) * (lse - l[c]);
      total += eps / C * smooth;
    }
  }
  return static_cast<float>(total / total_weight(labels, B, opt));
}

void softmax_cross_entropy_backward(float* dlogits, const float* probs, const int32_t* labels,
                                    int64_t B, int64_t C, const LossOptions& opt) {
  const double eps = opt.label_smoothing, inv = 1.0 / total_weight(labels, B, opt);
  double wsum = 0;  // sum_c w[c]
  for (int64_t c = 0; c < C; ++c) wsum += opt.class_weights ? opt.class_weights[c] : 1.0;
  for (int64_t bb = 0; bb < B; ++bb) {
    const double wy = opt.class_weights ? opt.class_weights[labels[bb]] : 1.0;
    for (int64_t c = 0; c < C; ++c) {
      const double p = probs[bb * C + c], wc = opt.class_weights ? opt.class_weights[c] : 1.0;
      double g = (1.0 - eps) * wy * (p - (c == labels[bb] ? 1.0 : 0.0));
      if (eps > 0) g += eps / C * (p * wsum - wc);
      dlogits[bb * C + c] += static_cast<float>(g * inv);
    }
  }
}

}  // namespace harvit::nn
