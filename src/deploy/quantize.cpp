#include "deploy/quantize.h"

#include <algorithm>

namespace harvit::deploy {

std::unique_ptr<nn::Model> convert_precision(const nn::Model& model, const std::string& precision) {
  const nn::Precision p = nn::parse_precision(precision);
  if (p == nn::Precision::Fp32) return nullptr;
  auto copy = nn::make_model(model.config_json());
  const auto& from = model.params();
  auto& to = copy->params();
  std::copy(from.values(), from.values() + from.count(), to.values());
  copy->set_precision(p);
  return copy;
}

}  // namespace harvit::deploy
