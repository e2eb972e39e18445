// Translation of the watched Kubernetes objects into the routing model's services and routes.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "discovery/object_store.hpp"

namespace sluice::discovery {

struct TranslateOptions {
  config::ClusterIdentity local;                // endpoints of this cluster key are our own pods
  std::vector<std::string> sidecar_listeners;   // listeners that get host-name routes per service
  std::vector<std::string> gateway_listeners;   // listeners that get the ServiceExport rules
  // The proxy's own namespace: its services also answer to the bare service name ("httpbin"), as the
  // pod's DNS search path would resolve it. Elsewhere the bare name is used only when unique.
  std::string home_namespace = "default";
};

struct Translation {
  std::vector<config::Service> services;  // sorted by namespace/name
  std::vector<config::Route> routes;
};

// Builds services and routes from the store (the rules: translate.cpp's header comment and
// discovery/README.md). Pure function of its inputs; any thread.
Translation translate(const ObjectStore& store, const TranslateOptions& options);

// The host names a sidecar answers for a service, in this order: name.ns, name.ns.svc,
// name.ns.svc.cluster.local, name.ns.svc.clusterset.local (the bare name is added by translate()).
std::vector<std::string> service_host_names(const std::string& name, const std::string& name_space);

}  // namespace sluice::discovery
