// The input routing builds a snapshot from: the static config or a discovery
// source produce a Model; build_snapshot() turns it into an immutable Snapshot.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "routing/registry.hpp"

namespace sluice::routing {

struct Snapshot;

struct Model {
  config::ClusterIdentity local;          // whose endpoints count as local
  std::vector<config::Service> services;
  std::vector<config::Route> routes;
  bool stale = false;                     // the source cannot currently vouch for this data
  std::string source = "static";          // "static", "kubernetes", ... for /explain and metrics
};

// The routing part of a static config: its cluster identity, services and routes. Any thread.
inline Model static_model(const config::Config& cfg) {
  Model model;
  model.local = cfg.cluster;
  model.services = cfg.services;
  model.routes = cfg.routes;
  model.source = "static";
  return model;
}

// Builds a snapshot. Per-endpoint state (active requests, failures, ejection) is taken from `registry`,
// keyed by endpoint identity (service, cluster, address, port), so it survives rebuilds. Control thread.
std::shared_ptr<Snapshot> build_snapshot(const Model& model, EndpointRegistry& registry,
                                         std::chrono::steady_clock::time_point now);

}  // namespace sluice::routing
