// ONNX export (deploy/onnx_export.h): the model's forward pass restated as an ONNX graph, node by
// node, with ONNX's protobuf classes (onnx/onnx_pb.h from libonnx-dev). Rows stay 2-D ([rows, D])
// between the linear layers, as in harvit's forward, so every linear layer is one Gemm
// (transB = 1, the PyTorch weight as it is); attention and the patch merge reshape around that.
#include "deploy/onnx_export.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include <onnx/onnx_pb.h>

#include "core/safetensors.h"  // write_file_atomic
#include "core/tensor.h"
#include "nn/cnn.h"
#include "nn/vit.h"

#ifndef HARVIT_VERSION
#error "HARVIT_VERSION must be defined (CMakeLists.txt passes the project version)"
#endif

namespace harvit::deploy {

namespace {

using json = nlohmann::json;

// Appends nodes to a graph; each node is named after its (unique) output.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto* g) : g_(g) {}
  using Attrs = std::function<void(onnx::NodeProto&)>;

  const std::string& op(const std::string& type, const std::vector<std::string>& in, const std::string& out,
                        const Attrs& attrs = {}) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(type);
    n->set_name(out);
    for (const auto& i : in) n->add_input(i);
    n->add_output(out);
    if (attrs) attrs(*n);
    return n->output(0);
  }
  // A Constant node holding an int64 vector (Reshape shapes, Pad amounts).
  std::string ints(const std::string& name, const std::vector<int64_t>& v) {
    return op("Constant", {}, name, [&](onnx::NodeProto& n) {
      onnx::AttributeProto* a = n.add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      onnx::TensorProto* t = a->mutable_t();
      t->set_data_type(onnx::TensorProto::INT64);
      t->add_dims(static_cast<int64_t>(v.size()));
      for (int64_t x : v) t->add_int64_data(x);
    });
  }
  // A Constant node holding a float scalar.
  std::string scalar(const std::string& name, float v) {
    return op("Constant", {}, name, [&](onnx::NodeProto& n) {
      onnx::AttributeProto* a = n.add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      onnx::TensorProto* t = a->mutable_t();
      t->set_data_type(onnx::TensorProto::FLOAT);
      t->add_float_data(v);
    });
  }
  // A float initializer (raw little-endian data), named as given.
  void initializer(const std::string& name, const Shape& shape, const float* data) {
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char*>(data), sizeof(float) * harvit::numel(shape)));
  }

  // x [rows, in] -> [rows, out]: Gemm with the PyTorch (out, in) weight, transB = 1.
  std::string linear(const std::string& x, const std::string& prefix, const std::string& out) {
    return op("Gemm", {x, prefix + "weight", prefix + "bias"}, out, [](onnx::NodeProto& n) { attr(n, "transB", int64_t{1}); });
  }
  std::string layernorm(const std::string& x, const std::string& prefix, const std::string& out) {
    return op("LayerNormalization", {x, prefix + "weight", prefix + "bias"}, out, [](onnx::NodeProto& n) {
      attr(n, "axis", int64_t{-1});
      attr(n, "epsilon", 1e-5f);
    });
  }
  std::string reshape(const std::string& x, const std::vector<int64_t>& shape, const std::string& out) {
    return op("Reshape", {x, ints(out + "/shape", shape)}, out);
  }
  std::string transpose(const std::string& x, const std::vector<int64_t>& perm, const std::string& out) {
    return op("Transpose", {x}, out, [&](onnx::NodeProto& n) { attr(n, "perm", perm); });
  }

  static void attr(onnx::NodeProto& n, const char* name, int64_t v) {
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void attr(onnx::NodeProto& n, const char* name, float v) {
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void attr(onnx::NodeProto& n, const char* name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

 private:
  onnx::GraphProto* g_;
};

// A float tensor value_info whose first dimension is the dynamic batch "N".
void value_info(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& rest,
                const std::string& doc) {
  v->set_name(name);
  v->set_doc_string(doc);
  onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* s = t->mutable_shape();
  s->add_dim()->set_dim_param("N");
  for (int64_t d : rest) s->add_dim()->set_dim_value(d);
}

// The ViT's forward (nn/vit.cpp), x [N, 1, T, M] (normalised) -> logits [N, C].
std::string vit_graph(GraphBuilder& b, const nn::VitConfig& c, const std::string& x) {
  const int64_t D = c.D, H = c.H, A = c.A, HA = H * A;
  // patch_conv: kernel (P, 1), stride (P, 1): [N, D, N0, M] (a remainder shorter than P dropped)
  b.op("Conv", {x, "patch_conv.weight", "patch_conv.bias"}, "patch_conv/out", [&](onnx::NodeProto& n) {
    GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{c.P, 1});
    GraphBuilder::attr(n, "strides", std::vector<int64_t>{c.P, 1});
  });
  b.transpose("patch_conv/out", {0, 3, 2, 1}, "patch_conv/tokens");  // [N, M, N0, D]
  b.op("Add", {"patch_conv/tokens", "position_embedding"}, "position_embedding/out");
  // Rows (b, m, token) of width D, the layout of harvit's activations.
  std::string h = b.reshape("position_embedding/out", {-1, D}, "h0");
  for (int64_t l = 0; l < c.L; ++l) {
    const int64_t n = c.tokens(l);
    const std::string p = "msa_layer." + std::to_string(l) + ".", s = "msa_layer." + std::to_string(l) + "/";
    // q, k, v [rows, HA] -> per head [G, H, n, A] (k transposed to [G, H, A, n]); attention within
    // each axis: G = N * M groups of n tokens.
    auto heads = [&](const char* which, const std::vector<int64_t>& perm) {
      const std::string y = b.linear(h, p + which + ".", s + which);
      b.reshape(y, {-1, n, H, A}, s + which + "/split");
      return b.transpose(s + which + "/split", perm, s + which + "/heads");
    };
    const std::string q = heads("query", {0, 2, 1, 3}), k = heads("key", {0, 2, 3, 1}),
                      v = heads("value", {0, 2, 1, 3});
    b.op("MatMul", {q, k}, s + "qk");
    b.op("Mul", {s + "qk", b.scalar(s + "scale", 1.0f / std::sqrt(static_cast<float>(A)))}, s + "scores");
    b.op("Softmax", {s + "scores"}, s + "att", [](onnx::NodeProto& nd) { GraphBuilder::attr(nd, "axis", int64_t{-1}); });
    b.op("MatMul", {s + "att", v}, s + "z/heads");                      // [G, H, n, A]
    b.transpose(s + "z/heads", {0, 2, 1, 3}, s + "z/tokens");          // [G, n, H, A]
    const std::string z = b.reshape(s + "z/tokens", {-1, HA}, s + "z");  // heads concatenated
    // y = ReLU(h + LayerNorm(z Wo^T + bo))
    b.linear(z, p + "att_mlp.0.", s + "o");
    b.layernorm(s + "o", p + "att_mlp.1.", s + "o/ln");
    b.op("Add", {h, s + "o/ln"}, s + "residual");
    const std::string y = b.op("Relu", {s + "residual"}, s + "y");
    // Patch merge: tokens (2j, 2j+1) side by side; an odd count gets one zero token first.
    std::string cat;
    if (n % 2) {
      b.reshape(y, {-1, n, D}, s + "y/tokens");
      b.op("Pad", {s + "y/tokens", b.ints(s + "pad/amounts", {0, 0, 0, 0, 1, 0})}, s + "y/padded");
      cat = b.reshape(s + "y/padded", {-1, 2 * D}, s + "merge/in");
    } else {
      cat = b.reshape(y, {-1, 2 * D}, s + "merge/in");
    }
    b.linear(cat, p + "downsample_mlp.0.", s + "merge");
    b.layernorm(s + "merge", p + "downsample_mlp.1.", s + "merge/ln");
    h = b.op("Relu", {s + "merge/ln"}, s + "out");
  }
  // Flatten in (m, token, d) order, then the dense tower.
  b.reshape(h, {-1, c.F()}, "flatten");
  b.linear("flatten", "dense_tower.0.", "dense_tower.0/out");
  b.layernorm("dense_tower.0/out", "dense_tower.1.", "dense_tower.1/out");
  b.op("Relu", {"dense_tower.1/out"}, "dense_tower.2/out");
  return b.linear("dense_tower.2/out", "dense_tower.3.", "logits");
}

// The CNN's forward (nn/cnn.cpp), x [N, 1, T, M] (normalised) -> logits [N, C].
std::string cnn_graph(GraphBuilder& b, const nn::CnnConfig& c, const std::string& x) {
  b.reshape(x, {-1, c.T, c.M}, "convs/in/time_major");
  std::string h = b.transpose("convs/in/time_major", {0, 2, 1}, "convs/in");  // axes as channels [N, M, T]
  const size_t L = c.channels.size();
  for (size_t i = 0; i < L; ++i) {
    const std::string p = "convs." + std::to_string(i);
    b.op("Conv", {h, p + ".weight", p + ".bias"}, p + "/out", [&](onnx::NodeProto& n) {
      GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{c.kernel});
      GraphBuilder::attr(n, "pads", std::vector<int64_t>{c.kernel / 2, c.kernel / 2});  // "same"
    });
    h = b.op("Relu", {p + "/out"}, p + "/relu");
    if (i + 1 < L)
      h = b.op("MaxPool", {h}, p + "/pool", [](onnx::NodeProto& n) {
        GraphBuilder::attr(n, "kernel_shape", std::vector<int64_t>{2});
        GraphBuilder::attr(n, "strides", std::vector<int64_t>{2});
      });
  }
  b.op("ReduceMean", {h}, "mean_over_time", [](onnx::NodeProto& n) {
    GraphBuilder::attr(n, "axes", std::vector<int64_t>{2});
    GraphBuilder::attr(n, "keepdims", int64_t{0});
  });
  return b.linear("mean_over_time", "fc.", "logits");
}

void add_meta(onnx::ModelProto& m, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* e = m.add_metadata_props();
  e->set_key(key);
  e->set_value(value);
}

}  // namespace

std::string onnx_model_bytes(const nn::Model& model, const nn::CheckpointMeta& meta) {
  if (model.precision() != nn::Precision::Fp32)
    fail(std::string("ONNX export takes the fp32 model (this one runs in ") + nn::precision_name(model.precision()) +
         "): export the checkpoint as it was trained");
  const auto* vit = dynamic_cast<const nn::Vit*>(&model);
  const auto* cnn = dynamic_cast<const nn::Cnn*>(&model);
  if (!vit && !cnn) fail("ONNX export: unknown model kind '" + model.kind() + "' (vit and cnn are supported)");
  const int64_t T = model.T(), M = model.M(), C = model.C();

  // The checkpoint's normalisation, checked like deploy::Classifier checks it.
  std::vector<float> mean, sd;
  std::vector<std::string> axes;
  const json& norm = meta.normalization;
  if (norm.is_object() && norm.contains("mean") && norm.contains("std")) {
    try {
      mean = norm["mean"].get<std::vector<float>>();
      sd = norm["std"].get<std::vector<float>>();
    } catch (const json::exception& e) {
      fail(std::string("ONNX export: normalisation statistics are not lists of numbers: ") + e.what());
    }
    if (static_cast<int64_t>(mean.size()) != M || sd.size() != mean.size())
      fail("ONNX export: normalisation statistics have " + std::to_string(mean.size()) + " means and " +
           std::to_string(sd.size()) + " stds for a model of " + std::to_string(M) + " axes");
    for (float s : sd)
      if (!(s > 0.0f) || !std::isfinite(s)) fail("ONNX export: normalisation has a non-positive or non-finite std");
    if (norm.contains("axes") && norm["axes"].is_array())
      for (const auto& a : norm["axes"])
        if (a.is_string()) axes.push_back(a.get<std::string>());
  }
  if (static_cast<int64_t>(axes.size()) != M) {
    axes.clear();
    for (int64_t m = 0; m < M; ++m) axes.push_back("axis" + std::to_string(m));
  }
  std::vector<std::string> classes = meta.class_names;
  if (classes.empty())
    for (int64_t c = 0; c < C; ++c) classes.push_back("class" + std::to_string(c));
  if (static_cast<int64_t>(classes.size()) != C)
    fail("ONNX export: " + std::to_string(classes.size()) + " class names for a model of " + std::to_string(C) +
         " classes");

  onnx::ModelProto m;
  m.set_ir_version(onnx::IR_VERSION);
  m.set_producer_name("harvit");
  m.set_producer_version(HARVIT_VERSION);
  m.set_domain("harvit");
  m.set_model_version(1);
  m.set_doc_string("harvit " + model.kind() +
                   ": x [N, 1, T, M] raw sensor samples (normalised inside the graph with the checkpoint's "
                   "statistics) -> logits [N, C], probabilities [N, C] (softmax)");
  onnx::OperatorSetIdProto* ops = m.add_opset_import();
  ops->set_domain("");
  ops->set_version(kOnnxOpset);

  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("harvit_" + model.kind());
  GraphBuilder b(g);
  value_info(g->add_input(), "x", {1, T, M}, "raw windows [N, 1, T, M] in the units of the training data");
  for (const nn::ParamInfo& p : model.params().infos())
    b.initializer(p.name, p.shape, model.params().values() + p.offset);

  std::string x = "x";
  if (!mean.empty()) {  // (x - mean) / std per axis, the last dimension (as harvit's Classifier)
    b.initializer("normalization.mean", {M}, mean.data());
    b.initializer("normalization.std", {M}, sd.data());
    b.op("Sub", {"x", "normalization.mean"}, "normalization/centered");
    x = b.op("Div", {"normalization/centered", "normalization.std"}, "normalization/out");
  }
  const std::string logits = vit ? vit_graph(b, vit->config(), x) : cnn_graph(b, cnn->config(), x);
  // A calibrated checkpoint (harvit calibrate): probabilities = softmax(logits / T), as harvit's
  // Classifier computes them; the "unknown" threshold travels in the metadata.
  double temperature = 1.0;
  json calibration;
  if (meta.extra.is_object() && meta.extra.contains("calibration")) {
    calibration = meta.extra["calibration"];
    temperature = calibration.value("temperature", 1.0);
    if (!(temperature > 0) || !std::isfinite(temperature)) fail("ONNX export: the checkpoint's calibration temperature is not positive");
  }
  std::string scaled = logits;
  if (temperature != 1.0)
    scaled = b.op("Div", {logits, b.scalar("calibration/temperature", static_cast<float>(temperature))}, "calibration/scaled");
  b.op("Softmax", {scaled}, "probabilities", [](onnx::NodeProto& n) { GraphBuilder::attr(n, "axis", int64_t{-1}); });
  value_info(g->add_output(), "logits", {C}, "class scores before softmax");
  value_info(g->add_output(), "probabilities", {C},
             temperature != 1.0 ? "softmax of logits / T (the checkpoint's calibration temperature)"
                                : "softmax of logits over the classes");

  add_meta(m, "classes", json(classes).dump());
  add_meta(m, "window", std::to_string(T));
  add_meta(m, "axes", json(axes).dump());
  add_meta(m, "normalization", mean.empty() ? "null" : json{{"mean", mean}, {"std", sd}}.dump());
  add_meta(m, "model_config", model.config_json().dump());
  add_meta(m, "harvit_version", HARVIT_VERSION);
  if (!calibration.is_null()) add_meta(m, "calibration", calibration.dump());  // temperature, "unknown" threshold

  std::string bytes;
  if (!m.SerializeToString(&bytes)) fail("ONNX export: serialising the model failed");
  return bytes;
}

void export_onnx(const std::string& path, const nn::Model& model, const nn::CheckpointMeta& meta) {
  write_file_atomic(path, onnx_model_bytes(model, meta));
}

}  // namespace harvit::deploy
