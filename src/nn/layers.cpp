#include "nn/layers.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/gemm.h"
#include "core/simd.h"
#include "core/tensor.h"
#include "core/threading.h"

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
    parallel_for(R, R * OUT >= kMinParallel, [&](int64_t r) {
      std::memcpy(out + r * OUT, b, OUT * sizeof(float));
    });
  }
  // Serial mode (a streaming recogniser on its caller's thread): oneDNN's sgemm allocates its
  // packing buffers on every call above one row, so several rows take the calling thread's own
  // kernel (core/gemm.h); one row (a GEMV) stays with oneDNN, which allocates nothing for it.
  if (R > 1 && serial_mode())
    small_gemm_nt(R, OUT, IN, 1.0f, inp, IN, w, IN, out, OUT, b != nullptr);
  else
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
  // A lower bar than other loops: a LayerNorm reads rows that the previous layer's threads each
  // wrote a share of, so on one thread it waits on the other cores' caches (batch 1, 2 threads:
  // block 0's 96 x 256 took 20 us on the calling thread, 12.5 on the pool).
  parallel_for(R, R > 1 && R * Dn >= kMinParallel / 4, [&](int64_t r) {
    const float* x = inp + r * Dn;
    const float m = simd::sum(x, Dn) / static_cast<float>(Dn);
    const float rs = 1.0f / std::sqrt(simd::sum_sq_dev(x, Dn, m) / static_cast<float>(Dn) + kLnEps);
    mean[r] = m;
    rstd[r] = rs;
    float* o = out + r * Dn;
    // residual and ReLU chosen outside the loops so each one vectorises
    if (residual) {
      const float* res = residual + r * Dn;
#pragma omp simd
      for (int64_t i = 0; i < Dn; ++i) o[i] = (x[i] - m) * rs * g[i] + b[i] + res[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < Dn; ++i) o[i] = (x[i] - m) * rs * g[i] + b[i];
    }
    if (relu) {
#pragma omp simd
      for (int64_t i = 0; i < Dn; ++i) o[i] = o[i] > 0.0f ? o[i] : 0.0f;
    }
  });
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
// Attention runs one (window-axis, head) pair at a time: a few dozen tokens each, so every
// product is a small register-tiled GEMM on the calling thread (core/gemm.h), the softmax is
// vectorised, and the pairs are shared among the threads once there is enough work for more
// than one.
constexpr int64_t kMinParallelMacs = 1 << 17;
bool attention_in_parallel(int64_t G, int64_t H, int64_t n, int64_t A) {
  return G * H > 1 && G * H * n * n * A >= kMinParallelMacs;
}

// Per-thread scratch, grown to the largest shape seen and then reused.
float* thread_scratch(size_t floats) {
  thread_local std::vector<float> buf;
  if (buf.size() < floats) buf.resize(floats);
  return buf.data();
}

// row (n) = softmax(row), in place
inline void softmax_inplace(float* row, int64_t n) {
  int64_t j = 0;
  float mx = row[0], sum = 0.0f;
#ifdef HARVIT_AVX2
  const int64_t n8 = n / 8 * 8;
  if (n8 > 0) {
    __m256 m = _mm256_loadu_ps(row);
    for (int64_t c = 8; c < n8; c += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(row + c));
    mx = simd::hmax(m);
  }
  for (int64_t c = n8; c < n; ++c) mx = std::max(mx, row[c]);
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 vs = _mm256_setzero_ps();
  for (; j < n8; j += 8) {
    const __m256 e = simd::exp(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmx));
    _mm256_storeu_ps(row + j, e);
    vs = _mm256_add_ps(vs, e);
  }
  sum = simd::hsum(vs);
#else
  for (int64_t c = 1; c < n; ++c) mx = std::max(mx, row[c]);
#endif
  for (; j < n; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
#pragma omp simd
  for (int64_t c = 0; c < n; ++c) row[c] *= inv;
}
}  // namespace

void attention_forward_rows(float* z, float* att, const float* q, const float* k, const float* v, int64_t n,
                            int64_t H, int64_t A, int64_t ld, int64_t g, int64_t h, int64_t i0, int64_t i1) {
  const int64_t HA = H * A, off = g * n * ld + h * A, m = i1 - i0;
  const float scale = 1.0f / std::sqrt(static_cast<float>(A));
  float* P = att + ((g * H + h) * n + i0) * n;
  small_gemm_nt(m, n, A, scale, q + off + i0 * ld, ld, k + off, ld, P, n, false);  // S = q k^T / sqrt(A)
  for (int64_t i = 0; i < m; ++i) softmax_inplace(P + i * n, n);                  // over the key index
  // z = P v, straight into the heads-concatenated layout
  small_gemm(m, A, n, 1.0f, P, n, 1, v + off, ld, z + (g * n + i0) * HA + h * A, HA, false);
}

void attention_forward(float* z, float* att, const float* q, const float* k, const float* v,
                       int64_t G, int64_t n, int64_t H, int64_t A, int64_t ld) {
  // q, k, v (G, n, H*A, rows ld apart); z (G, n, H*A); att (G, H, n, n)
  parallel_for(G * H, attention_in_parallel(G, H, n, A), [&](int64_t gh) {
    attention_forward_rows(z, att, q, k, v, n, H, A, ld, gh / H, gh % H, 0, n);
  });
}

void attention_backward(float* dq, float* dk, float* dv, const float* dz, const float* att, const float* q,
                        const float* k, const float* v, int64_t G, int64_t n, int64_t H, int64_t A, int64_t ld) {
  // dz (G, n, H*A) -> dq, dk, dv (G, n, H*A, rows ld apart) =
  const int64_t HA = H * A;
  const float scale = 1.0f / std::sqrt(static_cast<float>(A));
#pragma omp parallel for schedule(static) if(attention_in_parallel(G, H, n, A))
  for (int64_t gh = 0; gh < G * H; ++gh) {
    const int64_t g = gh / H, h = gh % H, off = g * n * ld + h * A;
    const float* P = att + gh * n * n;
    const float* dzg = dz + g * n * HA + h * A;
    float* dP = thread_scratch(n * n);
    small_gemm_nt(n, n, A, 1.0f, dzg, HA, v + off, ld, dP, n, false);  // dP = dz v^T
    small_gemm(n, A, n, 1.0f, P, 1, n, dzg, HA, dv + off, ld, false);  // dv = P^T dz
    // softmax backward and the 1/sqrt(A) scale: dS = P * (dP - sum_j P dP) / sqrt(A), in place
    for (int64_t i = 0; i < n; ++i) {
      const float* p = P + i * n;
      float* d = dP + i * n;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < n; ++j) dot += p[j] * d[j];
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) d[j] = p[j] * (d[j] - dot) * scale;
    }
    small_gemm(n, A, n, 1.0f, dP, n, 1, k + off, ld, dq + off, ld, false);  // dq = dS k
    small_gemm(n, A, n, 1.0f, dP, 1, n, q + off, ld, dk + off, ld, false);  // dk = dS^T q
  }
}

// ---- patch merge -----------------------------------------------------------------------------

void patch_merge_forward_rows(float* out, const float* inp, int64_t n, int64_t Dn, int64_t r0, int64_t r1) {
  // Token pairs are adjacent in memory, so each output row is one contiguous copy; only the odd
  // tail gets zeros.
  const int64_t n2 = (n + 1) / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t g = r / n2, i = 2 * (r % n2);  // output row r = tokens i, i + 1 of group g
    float* o = out + r * 2 * Dn;
    const int64_t pair = std::min<int64_t>(2, n - i);
    simd::copy(o, inp + (g * n + i) * Dn, pair * Dn);
    if (pair < 2) std::memset(o + Dn, 0, Dn * sizeof(float));
  }
}

void patch_merge_forward(float* out, const float* inp, int64_t G, int64_t n, int64_t Dn) {
  // inp (G, n, Dn) -> out (G, ceil(n/2), 2*Dn): each group's output rows, groups on the pool
  const int64_t n2 = (n + 1) / 2;
  parallel_for(G, G * n * Dn >= kMinParallel,
               [&](int64_t g) { patch_merge_forward_rows(out, inp, n, Dn, g * n2, (g + 1) * n2); });
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
      simd::copy(dst, src, n * Dn);
      continue;
    }
#pragma omp simd
    for (int64_t i = 0; i < n * Dn; ++i) dst[i] += src[i];
  }
}

// ---- patch embedding -------------------------------------------------------------------------

void patch_embed_forward_rows(float* out, float* patches, const float* x, const float* w, const float* b,
                              const float* pos, int64_t T, int64_t M, int64_t P, int64_t D, int64_t r0, int64_t r1) {
  // One pass on the calling thread, each output written once, over w transposed (P, D) so that d
  // is the vector index: a P-term FMA chain from zero, then + (b + pos) - the operations, in order,
  // of the small_gemm_nt + bias pass this replaced (20 us of a 0.4 ms forward: a GEMM with
  // k = P = 4 and a second pass over the output).
  const int64_t N = T / P;
  float* wt = thread_scratch(P * D);
  for (int64_t d = 0; d < D; ++d)
    for (int64_t p = 0; p < P; ++p) wt[p * D + d] = w[d * P + p];
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t bb = r / (M * N), m = r / N % M, nn = r % N;
    float* xr = patches + r * P;
    for (int64_t p = 0; p < P; ++p) xr[p] = x[(bb * T + nn * P + p) * M + m];
    const float* pr = pos + (r % (M * N)) * D;
    float* o = out + r * D;
    int64_t d = 0;
#ifdef HARVIT_AVX2
    for (; d + 8 <= D; d += 8) {
      __m256 acc = _mm256_setzero_ps();
      for (int64_t p = 0; p < P; ++p)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(xr[p]), _mm256_loadu_ps(wt + p * D + d), acc);
      _mm256_storeu_ps(o + d, _mm256_add_ps(acc, _mm256_add_ps(_mm256_loadu_ps(b + d), _mm256_loadu_ps(pr + d))));
    }
#endif
    for (; d < D; ++d) {
      float acc = 0.0f;
      for (int64_t p = 0; p < P; ++p) acc = std::fma(xr[p], wt[p * D + d], acc);
      o[d] = acc + (b[d] + pr[d]);
    }
  }
}

void patch_embed_forward(float* out, float* patches, const float* x, const float* w, const float* b,
                         const float* pos, int64_t B, int64_t T, int64_t M, int64_t P, int64_t D) {
  // x (B, 1, T, M) -> patches (B, M, N, P) -> out (B, M, N, D)
  const int64_t N = T / P, R = B * M * N;
  if (R * D < kMinParallel * 4 || serial_mode()) {  // a few windows (streaming, batch 1)
    patch_embed_forward_rows(out, patches, x, w, b, pos, T, M, P, D, 0, R);
    return;
  }
  parallel_for_2d(B, M, B * M * T >= kMinParallel, [&](int64_t bb, int64_t m) {
      for (int64_t nn = 0; nn < N; ++nn)
        for (int64_t p = 0; p < P; ++p)
          patches[((bb * M + m) * N + nn) * P + p] = x[(bb * T + nn * P + p) * M + m];
  });
  gemm('N', 'T', R, D, P, 1.0f, patches, P, w, P, 0.0f, out, D);
  parallel_for(R, R * D >= kMinParallel, [&](int64_t r) {
    const float* pr = pos + (r % (M * N)) * D;
    float* o = out + r * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) o[d] += b[d] + pr[d];
  });
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
