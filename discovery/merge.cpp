#include "discovery/merge.hpp"

#include <map>

namespace sluice::discovery {

routing::Model merge_model(const routing::Model& base, Translation k8s, bool stale) {
  routing::Model model;
  model.local = base.local;
  model.stale = base.stale || stale;
  model.source = base.services.empty() && base.routes.empty() ? "kubernetes" : "static+kubernetes";

  std::map<std::string, const config::Service*> static_by_id;
  for (const auto& s : base.services) static_by_id[s.id()] = &s;

  model.services.reserve(base.services.size() + k8s.services.size());
  for (const auto& s : base.services)
    if (!s.clusters.empty()) model.services.push_back(s);
  for (auto& s : k8s.services) {
    auto it = static_by_id.find(s.id());
    if (it == static_by_id.end()) {
      model.services.push_back(std::move(s));
      continue;
    }
    const config::Service& t = *it->second;
    if (!t.clusters.empty()) continue;  // the static definition wins entirely
    s.load_balancer = t.load_balancer;
    s.hash = t.hash;
    s.session_sticky = t.session_sticky;
    s.outlier_detection = t.outlier_detection;
    s.health_check = t.health_check;
    s.retry = t.retry;
    s.tunnel = t.tunnel;
    s.slow_start_window = t.slow_start_window;
    static_by_id.erase(it);
    model.services.push_back(std::move(s));
  }
  // Templates that matched nothing in Kubernetes still exist (with no endpoints), so their routes resolve.
  for (const auto& [id, s] : static_by_id)
    if (s->clusters.empty()) model.services.push_back(*s);

  model.routes = base.routes;
  model.routes.insert(model.routes.end(), std::make_move_iterator(k8s.routes.begin()),
                      std::make_move_iterator(k8s.routes.end()));
  return model;
}

}  // namespace sluice::discovery
