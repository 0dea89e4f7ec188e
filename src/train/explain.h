// What the sensor ViT attends to (`harvit explain`): its attention probabilities mapped back onto
// the time axis of a window, per block and as attention rollout (Abnar & Zuidema 2020), and the
// pictures that show them under the window's signals. docs/explain.md says how to read them.
//
// Geometry: block l's input has tokens(l) tokens per axis; token j covers the 2^l patches
// [j*2^l, min((j+1)*2^l, N)) (a merge of an odd count pads a zero token, so the last token may
// cover fewer), patch p covers the samples [p*P, (p+1)*P); samples from N*P to T (a remainder
// shorter than a patch) are seen by no token.
//
// Rollout, per window and axis (attention never mixes axes): with A_l block l's attention
// averaged over heads (tokens(l) x tokens(l)), Ahat_l = 0.5 A_l + 0.5 I (the residual), and G_l
// the patch merge after block l (tokens(l+1) x tokens(l): row j averages its parents 2j and 2j+1,
// or is the one real parent where the merge padded),
//   R = G_{L-1} Ahat_{L-1} ... G_0 Ahat_0   (tokens(L) x N),
// each row a distribution over the input patches (rows of every factor sum to 1). The dense head
// reads all tokens(L) output tokens, so the map of a window's axis is R's mean row.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "nn/vit.h"

namespace harvit::train {

struct Span {
  int64_t begin = 0, end = 0;  // samples [begin, end) of the window
};
// The samples token j of block l's input covers (l = L: the tokens the dense head reads).
Span token_span(const nn::VitConfig& c, int64_t l, int64_t j);

// Block l's attention of group g (= window * M + axis) averaged over the heads: (n, n) row-major,
// n = c.tokens(l). att is Vit::attention(l) (G, H, n, n).
std::vector<double> head_average(const nn::VitConfig& c, const float* att, int64_t l, int64_t g);

// The rollout matrix R (tokens(L) x N, row-major) from the head-averaged maps A[l] (tokens(l)^2).
std::vector<double> rollout_matrix(const nn::VitConfig& c, const std::vector<std::vector<double>>& A);

// Maps of one window of the last forward (the model's attention buffers), per axis.
struct AttentionMaps {
  // received[l]: (M, tokens(l)) attention each key token of block l receives, averaged over the
  // heads and the queries: a distribution over the tokens for each axis.
  std::vector<std::vector<double>> received;
  std::vector<double> rollout;  // (M, N): R's mean row for each axis, a distribution over patches
};
AttentionMaps attention_maps(const nn::Vit& vit, int64_t b);

// Token values (M, tokens(l)) of block l's tokens spread over the samples each covers: (M, T), as
// multiples of the uniform value (value * tokens(l)), so 1 = "as much as any token on average".
// Samples no token covers are NaN. l = 0 maps patch values (such as the rollout).
std::vector<double> to_time(const nn::VitConfig& c, int64_t l, const std::vector<double>& per_token);

// ---- harvit explain ------------------------------------------------------------------------------
struct ExplainOptions {
  std::string split = "test";
  std::vector<int64_t> indices;  // windows by their index within the split
  int64_t errors = 0;            // and the N most confident errors of the split
  int64_t per_class = 0;         // and the N most confident correct windows of every true class (too few:
                                 // its misclassified ones with the highest probability of the class)
  std::string out_dir = "explain";
};

struct ExplainedWindow {
  std::string why;          // "index", "error" or "class"
  int64_t split_index = 0;  // position within the split
  int64_t file_index = 0;   // position in the dataset file
  int32_t truth = 0, pred = 0;
  float prob = 0;           // the predicted class's probability
  std::string png;
};

// Loads the checkpoint (a ViT; anything else fails saying so), checks it fits the data like eval
// does, picks the windows, draws one PNG per window into out_dir and writes explain.json (the
// chosen windows and their maps). Returns the windows in the order drawn.
std::vector<ExplainedWindow> explain_checkpoint(const std::string& ckpt_path, const data::Dataset& ds,
                                                const ExplainOptions& opt);

}  // namespace harvit::train
