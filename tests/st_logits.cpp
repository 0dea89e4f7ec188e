// Test helper for tools/roundtrip_test.py: logits of a harvit checkpoint on inputs from a
// safetensors file, optionally after a few AdamW steps (then the trained model is saved).
//   st_logits MODEL IN OUT [STEPS SAVE]
#include <cstdio>
#include <string>

#include "core/safetensors.h"
#include "nn/checkpoint.h"
#include "optim/adamw.h"

using namespace harvit;

int main(int argc, char** argv) {
  if (argc != 4 && argc != 6) {
    std::fprintf(stderr, "usage: st_logits MODEL IN OUT [STEPS SAVE]\n");
    return 2;
  }
  try {
    auto ck = nn::load_checkpoint(argv[1]);
    nn::Model& m = *ck.model;
    auto in = SafetensorsFile::load(argv[2]);
    auto x = in.floats("x");
    auto y = in.ints("y");
    const int64_t B = static_cast<int64_t>(y.size());
    if (static_cast<int64_t>(x.size()) != B * m.T() * m.M()) throw std::runtime_error("x has the wrong size");
    SafetensorsWriter w;
    w.add_f32("logits", {B, m.C()}, m.forward(x.data(), B));
    if (argc == 6) {
      optim::AdamW opt(m.params().count(), optim::AdamWConfig{});
      for (int s = 0; s < std::stoi(argv[4]); ++s) {
        m.params().zero_grad();
        m.forward(x.data(), B);
        m.loss(y.data());
        m.backward(y.data());
        opt.step(m.params().values(), m.params().grads(), opt.config().lr);
      }
      nn::save_checkpoint(argv[5], m, ck.meta);
      w.add_f32("logits_after", {B, m.C()}, m.forward(x.data(), B));
    }
    w.write(argv[3]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "st_logits: %s\n", e.what());
    return 1;
  }
  return 0;
}
