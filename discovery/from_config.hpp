// Wiring helpers for the built-in "kubernetes" source (embed/sources.cpp): the Kubernetes source's options
// and static base from the configuration.
#pragma once

#include "config/config.hpp"
#include "discovery/options.hpp"
#include "routing/model.hpp"

namespace sluice::discovery {

// kubernetes.{kubeconfig,context,namespaces,coalesce}, and the listener names by role: sidecar
// listeners get host-name routes, gateway listeners the ServiceExport rules. `log` is left empty.
KubeOptions kube_options_from(const config::Config& config);

// The static part of the configuration, the base Model that KubernetesSource::set_base() merges under
// every publication, is routing's own static_model().
using routing::static_model;

}  // namespace sluice::discovery
