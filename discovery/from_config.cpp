#include "discovery/from_config.hpp"

namespace sluice::discovery {

KubeOptions kube_options_from(const config::Config& config) {
  KubeOptions o;
  o.kubeconfig = config.kubernetes.kubeconfig;
  o.context = config.kubernetes.context;
  o.namespaces = config.kubernetes.namespaces;
  o.coalesce = config.kubernetes.coalesce;
  for (const auto& l : config.listeners) {
    if (l.role == config::Role::sidecar) o.sidecar_listeners.push_back(l.name);
    else if (l.role == config::Role::gateway) o.gateway_listeners.push_back(l.name);
  }
  return o;
}

}  // namespace sluice::discovery
