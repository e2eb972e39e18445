// The union of a proxy's routing inputs (inputs.hpp).
#include "embed/inputs.hpp"

#include <algorithm>
#include <unordered_map>

#include "routing/plugins.hpp"
#include "routing/publisher.hpp"

namespace sluice {

std::vector<std::string> RoutingInputs::publish(std::size_t input, routing::Model model, bool is_config) {
  auto problems = routing::missing_plugins(model.services);
  std::lock_guard lock(mutex_);
  if (models_.size() <= input) models_.resize(input + 1);
  if (input == 0 && !is_config) input0_is_config_ = false;
  const bool owner_published = base_owner_ != 0 && models_.size() > base_owner_ && models_[base_owner_].has_value();
  if (input == 0 && is_config && (!input0_is_config_ || owner_published)) return problems;
  models_[input] = std::move(model);
  if (input != 0 && input == base_owner_ && input0_is_config_) models_[0].reset();
  // With one input (the common case) its model is published as it is, without a copy of the union.
  const bool alone = std::count_if(models_.begin(), models_.end(), [](const auto& m) { return m.has_value(); }) == 1;
  publisher_.submit(alone ? *models_[input] : combine(models_));
  publisher_.flush();
  return problems;
}

void RoutingInputs::set_base_owner(std::size_t input) {
  std::lock_guard lock(mutex_);
  base_owner_ = input;
}

routing::Model combine(const std::vector<std::optional<routing::Model>>& models) {
  routing::Model out;
  out.source.clear();
  std::unordered_map<std::string, std::size_t> position;
  bool first = true;
  for (const auto& m : models) {
    if (!m) continue;
    if (first) out.local = m->local;
    first = false;
    out.stale = out.stale || m->stale;
    if (!m->source.empty() && out.source.find(m->source) == std::string::npos) {
      out.source += (out.source.empty() ? "" : "+") + m->source;
    }
    for (const auto& svc : m->services) {
      auto [it, fresh] = position.try_emplace(svc.id(), out.services.size());
      if (fresh) {
        out.services.push_back(svc);
      } else {
        out.services[it->second] = svc;
      }
    }
    out.routes.insert(out.routes.end(), m->routes.begin(), m->routes.end());
  }
  return out;
}

}  // namespace sluice
