// Merging the static configuration's services and routes with the Kubernetes-derived ones.
#pragma once

#include "discovery/translate.hpp"
#include "routing/model.hpp"

namespace sluice::discovery {

// The Model routing builds from: `base` (the static config's local identity, services and routes;
// may have no services, as in sidecar mode) plus `k8s`.
// - Routes: the static routes first, then the Kubernetes ones (static routes are explicit overrides).
// - A service defined in both: a static service WITH clusters wins entirely; a static service without
//   clusters is a tuning template: the Kubernetes service (clusters, ports, policy) keeps its data and
//   takes the static one's load balancing, hashing, stickiness, outlier detection, health check, retry
//   and slow start.
// - stale: base.stale || stale. source: "kubernetes" or "static+kubernetes" when base has services.
// Pure function; any thread.
routing::Model merge_model(const routing::Model& base, Translation k8s, bool stale);

}  // namespace sluice::discovery
