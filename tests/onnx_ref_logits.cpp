// Test helper for tests/onnx_export.sh: harvit's own fp32 logits for the raw windows of an .npy
// file, normalised with the checkpoint's statistics exactly as deploy::Classifier does
// (data::normalize_windows), to compare with ONNX Runtime's logits of the exported graph.
//   onnx_ref_logits MODEL X.npy SPLIT.npy SPLIT_VALUE OUT_X.f32 OUT_LOGITS.f32
// Writes the selected raw windows (float32, [B, T, M], little-endian) and harvit's logits
// (float32, [B, C]); prints "B T M C".
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "data/dataset.h"
#include "data/npy.h"
#include "nn/checkpoint.h"

using namespace harvit;

namespace {
void write_f32(const std::string& path, const float* v, size_t n) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(v, sizeof(float), n, f) != n || std::fclose(f) != 0) fail(path + ": cannot write");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: onnx_ref_logits MODEL X.npy SPLIT.npy SPLIT_VALUE OUT_X.f32 OUT_LOGITS.f32\n");
    return 2;
  }
  try {
    auto ck = nn::load_checkpoint(argv[1]);
    nn::Model& m = *ck.model;
    const int64_t T = m.T(), M = m.M(), C = m.C();
    const auto X = data::npy_load(argv[2]);
    const auto S = data::npy_load(argv[3]);
    const int want = std::stoi(argv[4]);
    if (X.shape.size() != 3 || X.shape[1] != T || X.shape[2] != M)
      fail(std::string(argv[2]) + ": expected windows [n, " + std::to_string(T) + ", " + std::to_string(M) + "]");
    if (S.numel() != X.shape[0]) fail(std::string(argv[3]) + ": one split value per window expected");
    std::vector<float> raw;
    for (int64_t i = 0; i < X.shape[0]; ++i)
      if (static_cast<int>(S.values[i]) == want)
        for (int64_t j = 0; j < T * M; ++j) raw.push_back(static_cast<float>(X.values[i * T * M + j]));
    const int64_t B = static_cast<int64_t>(raw.size()) / (T * M);
    if (B == 0) fail("no window has split value " + std::to_string(want));
    std::vector<float> x = raw, logits(B * C);
    const auto& norm = ck.meta.normalization;
    if (norm.is_object() && norm.contains("mean"))
      data::normalize_windows(x.data(), B, T, M, norm["mean"].get<std::vector<float>>(),
                              norm["std"].get<std::vector<float>>());
    constexpr int64_t kBatch = 256;  // as eval
    for (int64_t b0 = 0; b0 < B; b0 += kBatch) {
      const int64_t nb = std::min(kBatch, B - b0);
      const float* z = m.forward(x.data() + b0 * T * M, nb);
      std::copy(z, z + nb * C, logits.begin() + b0 * C);
    }
    write_f32(argv[5], raw.data(), raw.size());
    write_f32(argv[6], logits.data(), logits.size());
    std::printf("%lld %lld %lld %lld\n", (long long)B, (long long)T, (long long)M, (long long)C);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx_ref_logits: %s\n", e.what());
    return 1;
  }
  return 0;
}
