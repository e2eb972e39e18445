// The input routing builds a snapshot from: the static config or a discovery
// source produce a Model; build_snapshot() (builder.hpp) turns it into an immutable Snapshot.
// Public header (installed with libsluice): what a discovery source publishes.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace sluice::routing {

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

}  // namespace sluice::routing
