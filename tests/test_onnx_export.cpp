// ONNX export (deploy/onnx_export.h): the graph's structure read back with ONNX's own classes -
// opset, inputs and outputs, every parameter an initializer with its state_dict name, shape and
// bytes, the normalisation, the metadata - checked by ONNX's C++ checker and strict shape
// inference (the shapes of the intermediate tensors), and the errors. The numbers the graph
// computes are checked in ONNX Runtime by tests/onnx_export.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include "deploy/onnx_export.h"
#include "deploy/quantize.h"
#include "fixture_util.h"
#include "nn/cnn.h"
#include "nn/vit.h"

using namespace harvit;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

nn::VitConfig odd_vit() {  // T = 23, P = 4: 5 tokens (3 samples dropped) -> 3 -> 2, odd twice
  nn::VitConfig c;
  c.T = 23; c.M = 2; c.C = 3; c.P = 4; c.D = 8; c.H = 2; c.A = 3; c.L = 2; c.hidden = 10;
  return c;
}

nn::CnnConfig small_cnn() {
  nn::CnnConfig c;
  c.T = 21; c.M = 2; c.C = 4; c.channels = {5, 6, 7}; c.kernel = 3;
  return c;
}

nn::CheckpointMeta meta_for(int64_t M, int64_t C) {
  nn::CheckpointMeta meta;
  for (int64_t c = 0; c < C; ++c) meta.class_names.push_back("act" + std::to_string(c));
  std::vector<float> mean, sd;
  std::vector<std::string> axes;
  for (int64_t m = 0; m < M; ++m) {
    mean.push_back(0.25f * m - 1.5f);
    sd.push_back(2.0f + m);
    axes.push_back("acc_" + std::string(1, static_cast<char>('x' + m)));
  }
  meta.normalization = {{"mean", mean}, {"std", sd}, {"axes", axes}};
  return meta;
}

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

std::vector<int64_t> dims_of(const onnx::ValueInfoProto& v) {  // -1 for a symbolic or unknown dim
  std::vector<int64_t> d;
  for (const auto& x : v.type().tensor_type().shape().dim()) d.push_back(x.has_dim_value() ? x.dim_value() : -1);
  return d;
}

std::map<std::string, std::string> props(const onnx::ModelProto& m) {
  std::map<std::string, std::string> p;
  for (const auto& e : m.metadata_props()) p[e.key()] = e.value();
  return p;
}

// The checks every exported model passes, for a model with the given metadata.
void expect_common(const onnx::ModelProto& m, const nn::Model& model, const nn::CheckpointMeta& meta) {
  EXPECT_EQ(m.ir_version(), onnx::IR_VERSION);
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).domain(), "");
  EXPECT_EQ(m.opset_import(0).version(), 17);
  EXPECT_EQ(m.producer_name(), "harvit");
  EXPECT_EQ(m.producer_version(), HARVIT_PROJECT_VERSION);
  const auto& g = m.graph();
  ASSERT_EQ(g.input_size(), 1);
  EXPECT_EQ(g.input(0).name(), "x");
  EXPECT_EQ(g.input(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  EXPECT_EQ(g.input(0).type().tensor_type().shape().dim(0).dim_param(), "N");
  EXPECT_EQ(dims_of(g.input(0)), (std::vector<int64_t>{-1, 1, model.T(), model.M()}));
  ASSERT_EQ(g.output_size(), 2);
  EXPECT_EQ(g.output(0).name(), "logits");
  EXPECT_EQ(g.output(1).name(), "probabilities");
  for (const auto& o : g.output()) {
    EXPECT_EQ(dims_of(o), (std::vector<int64_t>{-1, model.C()})) << o.name();
    EXPECT_EQ(o.type().tensor_type().shape().dim(0).dim_param(), "N");
  }

  // Every parameter under its state_dict name, shape and exact bytes; besides them only the
  // normalisation statistics.
  std::map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : g.initializer()) EXPECT_TRUE(inits.emplace(t.name(), &t).second) << "duplicate " << t.name();
  const bool normed = meta.normalization.is_object();
  EXPECT_EQ(inits.size(), model.params().infos().size() + (normed ? 2 : 0));
  for (const auto& p : model.params().infos()) {
    auto it = inits.find(p.name);
    ASSERT_NE(it, inits.end()) << p.name << " is not an initializer";
    const onnx::TensorProto& t = *it->second;
    EXPECT_EQ(t.data_type(), onnx::TensorProto::FLOAT) << p.name;
    EXPECT_EQ(std::vector<int64_t>(t.dims().begin(), t.dims().end()), p.shape) << p.name;
    ASSERT_EQ(t.raw_data().size(), sizeof(float) * p.size) << p.name;
    EXPECT_EQ(std::memcmp(t.raw_data().data(), model.params().values() + p.offset, t.raw_data().size()), 0) << p.name;
  }
  if (normed) {
    for (const char* k : {"mean", "std"}) {
      auto it = inits.find(std::string("normalization.") + k);
      ASSERT_NE(it, inits.end()) << k;
      const auto want = meta.normalization[k].get<std::vector<float>>();
      ASSERT_EQ(it->second->raw_data().size(), sizeof(float) * want.size());
      EXPECT_EQ(std::memcmp(it->second->raw_data().data(), want.data(), sizeof(float) * want.size()), 0) << k;
    }
    // The graph starts with (x - mean) / std.
    ASSERT_GE(g.node_size(), 2);
    EXPECT_EQ(g.node(0).op_type(), "Sub");
    EXPECT_EQ(g.node(0).input(0), "x");
    EXPECT_EQ(g.node(0).input(1), "normalization.mean");
    EXPECT_EQ(g.node(1).op_type(), "Div");
    EXPECT_EQ(g.node(1).input(0), g.node(0).output(0));
    EXPECT_EQ(g.node(1).input(1), "normalization.std");
  }

  // Topological order: every input is x, an initializer or an earlier node's output.
  std::set<std::string> known{"x"};
  for (const auto& t : g.initializer()) known.insert(t.name());
  for (const auto& n : g.node()) {
    for (const auto& i : n.input()) EXPECT_TRUE(known.count(i)) << n.name() << " reads " << i << " before it is made";
    for (const auto& o : n.output()) EXPECT_TRUE(known.insert(o).second) << o << " made twice";
  }
  ASSERT_GE(g.node_size(), 1);
  EXPECT_EQ(g.node(g.node_size() - 1).op_type(), "Softmax");
  EXPECT_EQ(g.node(g.node_size() - 1).output(0), "probabilities");

  const auto p = props(m);
  EXPECT_EQ(json::parse(p.at("classes")), json(meta.class_names));
  EXPECT_EQ(p.at("window"), std::to_string(model.T()));
  EXPECT_EQ(json::parse(p.at("model_config")), model.config_json());
  EXPECT_EQ(p.at("harvit_version"), HARVIT_PROJECT_VERSION);
  if (normed) {
    EXPECT_EQ(json::parse(p.at("axes")), meta.normalization["axes"]);
    EXPECT_EQ(json::parse(p.at("normalization"))["mean"], meta.normalization["mean"]);
    EXPECT_EQ(json::parse(p.at("normalization"))["std"], meta.normalization["std"]);
  } else {
    EXPECT_EQ(p.at("normalization"), "null");
  }

  // ONNX's checker and its strict shape inference accept it.
  EXPECT_NO_THROW(onnx::checker::check_model(m));
}

// Shapes of the graph's tensors after ONNX's strict shape inference (-1: symbolic).
std::map<std::string, std::vector<int64_t>> inferred(onnx::ModelProto m) {
  onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), onnx::ShapeInferenceOptions(true, 1));
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& v : m.graph().value_info()) out[v.name()] = dims_of(v);
  return out;
}

std::vector<std::string> op_types(const onnx::ModelProto& m) {
  std::vector<std::string> v;
  for (const auto& n : m.graph().node()) v.push_back(n.op_type());
  return v;
}
int64_t count(const std::vector<std::string>& v, const std::string& s) { return std::count(v.begin(), v.end(), s); }

}  // namespace

TEST(OnnxExport, VitStructureWithOddTokensAndNormalisation) {
  const nn::VitConfig c = odd_vit();
  nn::Vit model(c);
  test::fixture_params(model, 11);
  const auto meta = meta_for(c.M, c.C);
  const onnx::ModelProto m = parse(deploy::onnx_model_bytes(model, meta));
  expect_common(m, model, meta);
  // query, key and value separately, although harvit's slab keeps them side by side
  for (int64_t l = 0; l < c.L; ++l)
    for (const char* w : {"query", "key", "value"}) {
      const auto& info = model.params().info("msa_layer." + std::to_string(l) + "." + w + ".weight");
      EXPECT_EQ(info.shape, (Shape{c.H * c.A, c.D}));
    }
  const auto ops = op_types(m);
  EXPECT_EQ(count(ops, "Conv"), 1);
  EXPECT_EQ(count(ops, "LayerNormalization"), 2 * c.L + 1);
  EXPECT_EQ(count(ops, "Gemm"), 5 * c.L + 2);   // q, k, v, o, merge per block; the dense tower
  EXPECT_EQ(count(ops, "Pad"), 2);              // 5 and 3 tokens are odd, 2 is not
  EXPECT_EQ(count(ops, "Softmax"), c.L + 1);    // attention per block, probabilities
  const auto s = inferred(m);
  const int64_t D = c.D, M = c.M, N0 = c.N();
  EXPECT_EQ(N0, 5);
  EXPECT_EQ(s.at("patch_conv/out"), (std::vector<int64_t>{-1, D, N0, M}));
  EXPECT_EQ(s.at("position_embedding/out"), (std::vector<int64_t>{-1, M, N0, D}));
  EXPECT_EQ(s.at("msa_layer.0/query/heads"), (std::vector<int64_t>{-1, c.H, 5, c.A}));
  EXPECT_EQ(s.at("msa_layer.0/key/heads"), (std::vector<int64_t>{-1, c.H, c.A, 5}));
  EXPECT_EQ(s.at("msa_layer.0/att"), (std::vector<int64_t>{-1, c.H, 5, 5}));
  EXPECT_EQ(s.at("msa_layer.0/y/padded"), (std::vector<int64_t>{-1, 6, D}));
  EXPECT_EQ(s.at("msa_layer.1/y/padded"), (std::vector<int64_t>{-1, 4, D}));
  EXPECT_EQ(s.count("msa_layer.2/y/padded"), 0u);
  EXPECT_EQ(s.at("msa_layer.0/merge/in"), (std::vector<int64_t>{-1, 2 * D}));
  EXPECT_EQ(s.at("flatten"), (std::vector<int64_t>{-1, c.F()}));
  EXPECT_EQ(c.F(), M * 2 * D);
  EXPECT_EQ(s.at("dense_tower.2/out"), (std::vector<int64_t>{-1, c.hidden}));
}

TEST(OnnxExport, VitWithoutBlocksOrNormalisation) {
  nn::VitConfig c = odd_vit();
  c.L = 0;
  nn::Vit model(c);
  nn::CheckpointMeta meta;  // no class names, no statistics: class0.., axis0.., no Sub/Div
  const onnx::ModelProto m = parse(deploy::onnx_model_bytes(model, meta));
  meta.class_names = {"class0", "class1", "class2"};
  expect_common(m, model, meta);
  EXPECT_EQ(props(m).at("axes"), R"(["axis0","axis1"])");
  const auto ops = op_types(m);
  EXPECT_EQ(count(ops, "Sub") + count(ops, "Div"), 0);
  EXPECT_EQ(m.graph().node(0).op_type(), "Conv");
  EXPECT_EQ(m.graph().node(0).input(0), "x");
  EXPECT_EQ(inferred(m).at("flatten"), (std::vector<int64_t>{-1, c.M * c.N() * c.D}));
}

TEST(OnnxExport, CnnStructure) {
  const nn::CnnConfig c = small_cnn();
  nn::Cnn model(c);
  const auto meta = meta_for(c.M, c.C);
  const onnx::ModelProto m = parse(deploy::onnx_model_bytes(model, meta));
  expect_common(m, model, meta);
  const auto ops = op_types(m);
  EXPECT_EQ(count(ops, "Conv"), 3);
  EXPECT_EQ(count(ops, "MaxPool"), 2);
  EXPECT_EQ(count(ops, "ReduceMean"), 1);
  EXPECT_EQ(count(ops, "Gemm"), 1);
  const auto s = inferred(m);
  EXPECT_EQ(s.at("convs/in"), (std::vector<int64_t>{-1, c.M, c.T}));
  EXPECT_EQ(s.at("convs.0/out"), (std::vector<int64_t>{-1, 5, 21}));  // "same" padding
  EXPECT_EQ(s.at("convs.0/pool"), (std::vector<int64_t>{-1, 5, 10}));  // odd length: last step dropped
  EXPECT_EQ(s.at("convs.1/pool"), (std::vector<int64_t>{-1, 6, 5}));
  EXPECT_EQ(s.at("convs.2/relu"), (std::vector<int64_t>{-1, 7, 5}));
  EXPECT_EQ(s.at("mean_over_time"), (std::vector<int64_t>{-1, 7}));
  EXPECT_EQ(c.length(2), 5);
}

TEST(OnnxExport, ClearErrors) {
  nn::Vit model(odd_vit());
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      FAIL() << "expected an error containing '" << needle << "'";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  nn::CheckpointMeta meta = meta_for(2, 3);
  meta.normalization["std"] = {1.0, 2.0, 3.0};
  expect_error([&] { deploy::onnx_model_bytes(model, meta); }, "3 stds for a model of 2 axes");
  meta = meta_for(2, 3);
  meta.normalization["std"] = {1.0, 0.0};
  expect_error([&] { deploy::onnx_model_bytes(model, meta); }, "non-positive or non-finite std");
  meta = meta_for(2, 3);
  meta.normalization["mean"] = "zero";
  expect_error([&] { deploy::onnx_model_bytes(model, meta); }, "not lists of numbers");
  meta = meta_for(2, 4);
  expect_error([&] { deploy::onnx_model_bytes(model, meta); }, "4 class names for a model of 3 classes");
  const auto q = deploy::convert_precision(model, "int8");
  expect_error([&] { deploy::onnx_model_bytes(*q, meta_for(2, 3)); }, "takes the fp32 model (this one runs in int8)");

  // Unwritable destination: the error names it, nothing is left; an existing file is kept.
  const fs::path dir = fs::temp_directory_path() / ("harvit_onnx_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string blocker = (dir / "afile").string();
  std::ofstream(blocker) << "x";
  const std::string bad = blocker + "/sub/model.onnx";
  expect_error([&] { deploy::export_onnx(bad, model, meta_for(2, 3)); }, bad);
  const std::string good = (dir / "model.onnx").string();
  deploy::export_onnx(good, model, meta_for(2, 3));
  EXPECT_EQ(parse(deploy::onnx_model_bytes(model, meta_for(2, 3))).SerializeAsString().size(), fs::file_size(good));
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.path().filename().string().find(".tmp.") == std::string::npos ? 1 : 100;
  EXPECT_EQ(files, 2) << "a temporary file was left in " << dir;
  fs::remove_all(dir);
}
