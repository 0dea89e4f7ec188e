#include "nn/checkpoint.h"

#include <algorithm>

#include "core/safetensors.h"

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
    out.model = make_model(parse_meta_json(path, "config", cfg_it->second));
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
