// Layers of the sensor ViT as forward/backward pairs over contiguous row-major float buffers.
// Conventions (llm.c style):
//   - every function opens with the shapes of its buffers;
//   - backward functions ACCUMULATE (+=) into parameter gradients and, by default, into input
//     gradients, so a tensor used twice (a residual) just works; callers zero gradient buffers
//     once per step. Where an input gradient has a single producer, `accumulate = false`
//     overwrites it instead, which saves zeroing and re-reading an activation-sized buffer;
//   - an input-gradient pointer may be null when nobody needs it.
#pragma once
#include <cstdint>

namespace harvit::nn {

// ---- linear: out = inp W^T + b ---------------------------------------------------------------
// inp (R, IN), w (OUT, IN), b (OUT) or null -> out (R, OUT)
void linear_forward(float* out, const float* inp, const float* w, const float* b, int64_t R,
                    int64_t IN, int64_t OUT);
// dout (R, OUT) -> dinp (R, IN) += dout W, dw (OUT, IN) += dout^T inp, db (OUT) += sum_r dout
// (accumulate = false: dinp = dout W)
void linear_backward(float* dinp, float* dw, float* db, const float* dout, const float* inp,
                     const float* w, int64_t R, int64_t IN, int64_t OUT, bool accumulate = true);

// ---- LayerNorm over the last dimension (eps 1e-5), optionally fused with a residual and ReLU --
// inp (R, Dn), g/b (Dn) -> out (R, Dn) = act(residual + LN(inp)); mean/rstd (R) kept for backward.
// residual may be null; relu selects act = ReLU (else identity).
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* g,
                       const float* b, int64_t R, int64_t Dn, const float* residual = nullptr,
                       bool relu = false);
// dout (R, Dn) is the gradient of LN's own output (apply relu_backward first when fused):
// dinp (R, Dn) += ..., dg/db (Dn) += ...
void layernorm_backward(float* dinp, float* dg, float* db, const float* dout, const float* inp,
                        const float* mean, const float* rstd, const float* g, int64_t R, int64_t Dn,
                        bool accumulate = true);

// ---- ReLU mask: dinp (n) += dout * (out > 0), where out is the ReLU's output ------------------
void relu_backward(float* dinp, const float* dout, const float* out, int64_t n, bool accumulate = true);

// ---- per-axis multi-head self-attention core: z = softmax(q k^T / sqrt(A)) v ------------------
// q, k, v (G, n, H*A) with G = B*M groups (one per window and axis), rows ld floats apart
// (ld = H*A for separate tensors, 3*H*A for views into one fused q|k|v projection);
// att (G, H, n, n) keeps the softmax probabilities for backward; z (G, n, H*A), contiguous, with
// heads concatenated (as the seed's permute).
void attention_forward(float* z, float* att, const float* q, const float* k, const float* v,
                       int64_t G, int64_t n, int64_t H, int64_t A, int64_t ld);
// The same for the queries [i0, i1) of group g and head h alone (every key of the group), on the
// calling thread: z's rows and att's query rows [i0, i1) of that pair. Each row's bits are those
// attention_forward gives it.
void attention_forward_rows(float* z, float* att, const float* q, const float* k, const float* v, int64_t n,
                            int64_t H, int64_t A, int64_t ld, int64_t g, int64_t h, int64_t i0, int64_t i1);
// dz (G, n, H*A) -> dq, dk, dv (G, n, H*A, rows ld apart) are OVERWRITTEN (each has this single
// producer). Both directions run one (window-axis, head) pair at a time as small register-tiled
// GEMMs over strided views (no permute or transpose copies), pairs shared among the threads.
void attention_backward(float* dq, float* dk, float* dv, const float* dz, const float* att, const float* q,
                        const float* k, const float* v, int64_t G, int64_t n, int64_t H, int64_t A, int64_t ld);

// ---- patch merge: pairs of tokens concatenated along features, odd n zero-padded --------------
// inp (G, n, Dn) -> out (G, ceil(n/2), 2*Dn): out[g, j] = [inp[g, 2j], inp[g, 2j+1] or 0]
void patch_merge_forward(float* out, const float* inp, int64_t G, int64_t n, int64_t Dn);
// Rows [r0, r1) of patch_merge_forward's output (G, ceil(n/2), 2*Dn), on the calling thread.
void patch_merge_forward_rows(float* out, const float* inp, int64_t n, int64_t Dn, int64_t r0, int64_t r1);
// dout (G, ceil(n/2), 2*Dn) -> dinp (G, n, Dn) += (the padded token's gradient is dropped)
void patch_merge_backward(float* dinp, const float* dout, int64_t G, int64_t n, int64_t Dn,
                          bool accumulate = true);

// ---- patch embedding (Conv2d 1->D, kernel (P,1), stride (P,1)) plus the position table -------
// x (B, 1, T, M) -> patches (B, M, N, P) gathered for backward; out (B, M, N, D) =
// patches w^T + b + pos, with w (D, 1, P, 1) seen as (D, P), b (D), pos (1, M, N, D). N = T / P.
void patch_embed_forward(float* out, float* patches, const float* x, const float* w, const float* b,
                         const float* pos, int64_t B, int64_t T, int64_t M, int64_t P, int64_t D);
// Rows [r0, r1) of out and patches (r = (b * M + m) * N + n) alone, on the calling thread, as the
// few-window path of patch_embed_forward computes them.
void patch_embed_forward_rows(float* out, float* patches, const float* x, const float* w, const float* b,
                              const float* pos, int64_t T, int64_t M, int64_t P, int64_t D, int64_t r0, int64_t r1);
// dout (B, M, N, D) -> dw (D, P) +=, db (D) +=, dpos (M, N, D) += (no input gradient: x is data)
void patch_embed_backward(float* dw, float* db, float* dpos, const float* dout,
                          const float* patches, int64_t B, int64_t M, int64_t N, int64_t P,
                          int64_t D);

// ---- softmax cross-entropy, mean over the batch -----------------------------------------------
// torch.nn.CrossEntropyLoss(weight=w, label_smoothing=eps) semantics: with W = sum_i w[y_i],
//   loss = sum_i [(1-eps) w[y_i] (-log p_i,y_i) + eps/C sum_c w[c] (-log p_i,c)] / W.
// weights null = all ones; eps 0 = plain cross-entropy (the seed's loss).
struct LossOptions {
  float label_smoothing = 0.0f;
  const float* class_weights = nullptr;  // (C) or null
};
// logits (B, C), labels (B) in [0, C) -> probs (B, C); returns the loss
float softmax_cross_entropy_forward(float* probs, const float* logits, const int32_t* labels,
                                    int64_t B, int64_t C, const LossOptions& opt = {});
// dlogits (B, C) += d(loss)/d(logits); plain case: (probs - onehot(labels)) / B
void softmax_cross_entropy_backward(float* dlogits, const float* probs, const int32_t* labels,
                                    int64_t B, int64_t C, const LossOptions& opt = {});

// ---- helpers ------------------------------------------------------------------------------------
// out (Cn) += column sums of X (R, Cn); deterministic for a fixed thread count.
void colsum_accumulate(float* out, const float* X, int64_t R, int64_t Cn);

}  // namespace harvit::nn
