#include "nn/checkpoint.h"

#include <algorithm>
#include <limits>

#include "core/safetensors.h"
#include "nn/cnn.h"
#include "nn/vit.h"

namespace harvit::nn {

using json = nlohmann::json;

void save_checkpoint(const std::string& path, const Model& model, const CheckpointMeta& meta) {
  SafetensorsWriter w;
  const ParamSlab& ps = model.params();
  for (const auto& p : ps.infos()) w.add_f32(p.name, p.shape, ps.values() + p.offset);
  w.set_metadata("format", kCheckpointFormat);
  w.set_metadata("version", std::to_string(kCheckpointVersion));
  w.set_metadata("config", model.config_json().dump());
  if (!meta.class_names.empty()) w.set_metadata("class_names", json(meta.class_names).dump());
  if (!meta.normalization.is_null()) w.set_metadata("normalization", meta.normalization.dump());
  if (!meta.extra.is_null()) w.set_metadata("extra", meta.extra.dump());
  w.write(path);
}

// The "model" field (default "vit"); a config that is not an object is refused here, by harvit's
// error rather than a JSON type error.
static std::string model_kind(const nlohmann::json& config) {
  if (!config.is_object()) fail("model config is not a JSON object");
  const auto it = config.find("model");
  if (it == config.end()) return "vit";
  if (!it->is_string()) fail("model config field \"model\" must be a string");
  return it->get<std::string>();
}

int64_t config_param_count(const nlohmann::json& config) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  auto mul = [](int64_t a, int64_t b) {
    int64_t r;
    return __builtin_mul_overflow(a, b, &r) ? kMax : r;
  };
  auto add = [](int64_t a, int64_t b) {
    int64_t r;
    return __builtin_add_overflow(a, b, &r) ? kMax : r;
  };
  const std::string kind = model_kind(config);
  if (kind == "vit") {  // the tensors Vit::Vit registers
    const VitConfig c = VitConfig::from_json(config);
    const int64_t D = c.D, HA = mul(c.H, c.A);
    int64_t n = c.N();  // tokens(L), without walking a huge L one block at a time
    for (int64_t l = 0; l < c.L && n > 1; ++l) n = (n + 1) / 2;
    const int64_t block = add(add(mul(4, mul(HA, D)), mul(3, HA)), add(mul(2, mul(D, D)), mul(6, D)));
    int64_t p = add(mul(mul(c.M, c.N()), D), add(mul(D, c.P), D));
    p = add(p, mul(c.L, block));
    const int64_t hidden = c.hidden;
    p = add(p, add(mul(hidden, mul(mul(c.M, n), D)), mul(3, hidden)));
    return add(p, add(mul(c.C, hidden), c.C));
  }
  if (kind == "cnn") {  // the tensors Cnn::Cnn registers
    const CnnConfig c = CnnConfig::from_json(config);
    int64_t p = 0, cin = c.M;
    for (int64_t co : c.channels) {
      p = add(p, add(mul(co, mul(cin, c.kernel)), co));
      cin = co;
    }
    return add(p, add(mul(c.C, cin), c.C));
  }
  fail("unknown model kind '" + kind + "' in the config (vit, cnn)");
}

static json parse_meta_json(const std::string& path, const std::string& key, const std::string& text) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail(path + ": metadata \"" + key + "\" is not valid JSON: " + e.what());
  }
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  SafetensorsFile f = SafetensorsFile::load(path);
  const auto& md = f.metadata();
  auto cfg_it = md.find("config");
  if (cfg_it == md.end())
    fail(path + ": no \"config\" in the safetensors metadata; convert PyTorch state_dicts with "
                "tools/torch_to_safetensors.py, which records the model config");
  if (auto v = md.find("version"); v != md.end() && v->second != std::to_string(kCheckpointVersion))
    fail(path + ": checkpoint version " + v->second + " is not supported (this harvit reads version " +
         std::to_string(kCheckpointVersion) + ")");
  LoadedCheckpoint out;
  try {
    const json config = parse_meta_json(path, "config", cfg_it->second);
    // The file must hold every parameter, so a config asking for far more than the file's
    // tensors hold is refused before the model (sized by the config alone) is allocated. Up to a
    // modest size the model is built anyway, so that the check below can name what is missing.
    int64_t values = 0;
    for (const auto& name : f.names()) values += numel(f.entry(name).shape);
    const int64_t needed = config_param_count(config);
    if (needed > values && needed > (int64_t{1} << 24))
      fail("the config needs " + std::to_string(needed) + " parameters but the file's tensors hold only " +
           std::to_string(values) + " values (wrong config or missing tensors)");
    out.model = make_model(config);
  } catch (const std::runtime_error& e) {
    fail(path + ": " + e.what());
  }
  ParamSlab& ps = out.model->params();
  std::vector<std::string> unknown;
  for (const auto& name : f.names())
    if (!ps.find(name)) unknown.push_back(name);
  if (!unknown.empty()) {
    std::string list;
    for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", " : "") + unknown[i];
    fail(path + ": " + std::to_string(unknown.size()) + " tensor(s) the model does not have: " + list);
  }
  for (const auto& p : ps.infos()) {
    if (!f.has(p.name)) fail(path + ": tensor \"" + p.name + "\" is missing");
    const StEntry& e = f.entry(p.name);
    if (e.shape != p.shape)
      fail(path + ": tensor \"" + p.name + "\" has shape " + shape_str(e.shape) + " but the config " +
           "needs " + shape_str(p.shape));
    if (e.dtype != "F32" && e.dtype != "F64")
      fail(path + ": tensor \"" + p.name + "\" has dtype " + e.dtype + ", expected F32");
    std::vector<float> v = f.floats(p.name);
    std::copy(v.begin(), v.end(), ps.values() + p.offset);
  }
  if (auto it = md.find("class_names"); it != md.end()) {
    json j = parse_meta_json(path, "class_names", it->second);
    if (!j.is_array()) fail(path + ": metadata \"class_names\" is not a list");
    for (const auto& s : j) {
      if (!s.is_string()) fail(path + ": metadata \"class_names\" holds a non-string");
      out.meta.class_names.push_back(s.get<std::string>());
    }
    if (static_cast<int64_t>(out.meta.class_names.size()) != out.model->C())
      fail(path + ": " + std::to_string(out.meta.class_names.size()) + " class names for C=" +
           std::to_string(out.model->C()) + " classes");
  }
  if (auto it = md.find("normalization"); it != md.end())
    out.meta.normalization = parse_meta_json(path, "normalization", it->second);
  if (auto it = md.find("extra"); it != md.end())
    out.meta.extra = parse_meta_json(path, "extra", it->second);
  return out;
}

}  // namespace harvit::nn
