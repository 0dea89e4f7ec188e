// ONNX export of a trained checkpoint (the ViT or the CNN baseline) for other runtimes (ONNX
// Runtime, TensorRT, ...). The graph is built from the model's config and its parameter slab with
// ONNX's own protobuf classes (Debian's libonnx-dev, ONNX 1.12: opset 17, IR version 8):
//   input   x              float [N, 1, T, M]  raw samples, dynamic batch N (the seed's layout)
//   (x - normalization.mean) / normalization.std   per axis, as harvit does, inside the graph
//   outputs logits         float [N, C]
//           probabilities  float [N, C]        Softmax over the classes
// Every parameter is an initializer under its PyTorch state_dict name and shape (query, key and
// value separately although harvit keeps them fused). metadata_props: classes (JSON list),
// window (T), axes (JSON list), normalization (JSON), model_config (JSON), harvit_version.
// The ONNX part is optional at configure time (HARVIT_HAVE_ONNX); this header needs none of it.
#pragma once
#include <string>

#include "nn/checkpoint.h"
#include "nn/model.h"

namespace harvit::deploy {

constexpr int kOnnxOpset = 17;  // the newest opset of ONNX 1.12 (LayerNormalization is 17)

// The serialised onnx.ModelProto for `model` with the checkpoint's metadata. Fails with a clear
// message for a model kind it does not know, an int8/bf16 model (export the fp32 checkpoint) or
// normalisation statistics that do not fit the model.
std::string onnx_model_bytes(const nn::Model& model, const nn::CheckpointMeta& meta);

// Writes onnx_model_bytes to `path` atomically (a temp file beside it, then rename): a failure
// (unwritable folder, full disk) leaves no partial file and names the path.
void export_onnx(const std::string& path, const nn::Model& model, const nn::CheckpointMeta& meta);

}  // namespace harvit::deploy
