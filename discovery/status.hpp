// What the Kubernetes source reports to the admin endpoint and metrics.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice::prometheus {
class Writer;
}

namespace sluice::discovery {

struct ResourceStatus {
  std::string resource;        // "services", "serviceimports.flomesh.io", ...
  std::string name_space;      // empty: cluster-wide
  bool synced = false;         // listed successfully at least once
  bool absent = false;         // the endpoint answers 404 (CRD not installed); retried slowly
  bool connected = false;      // a watch stream is open now
  bool stale = false;          // failed since the last successful list/watch: data may be behind
  std::uint64_t watch_restarts = 0;  // watch requests after the first (timeouts, drops, errors)
  std::uint64_t relists = 0;         // lists after the first (410 Gone, reconnect after a 404)
  std::uint64_t failures = 0;        // connection, TLS, HTTP or stream failures
  std::uint64_t events = 0;          // ADDED/MODIFIED/DELETED events applied
  std::uint64_t objects = 0;         // objects held for this resource (all namespaces)
  std::string last_error;            // empty when none yet
};

struct Status {
  std::string origin;               // where the credentials came from
  bool started = false;
  bool has_synced_once = false;     // every resource listed (or found absent) once: /ready may say 200
  bool stale = false;               // any watch stale: the published Model is flagged stale
  std::uint64_t publishes = 0;      // Models handed to the sink
  std::uint64_t malformed_objects = 0;
  std::uint64_t services = 0;       // services in the last published translation
  // First event of the last burst -> the sink returned, minus the coalescing window. The sink of a proxy
  // (embed/sources.cpp, through RoutingInputs) builds and publishes the snapshot, so this is "event
  // received -> routable".
  std::chrono::microseconds last_publish_latency{0};
  std::uint64_t api_probes = 0;          // probes of a lost API server (api_probe.hpp)
  std::uint64_t api_returns = 0;         // times a probe saw it answer and woke the watches
  std::uint64_t credential_reloads = 0;  // kubeconfig / service account re-read after a 401
  std::vector<ResourceStatus> resources;
};

// Writes the sluice_discovery_* families to `out`, the per-resource ones labelled
// resource="...",namespace="...". Any thread that owns `out` (reads only `status`).
void render_prometheus(const Status& status, prometheus::Writer& out);

}  // namespace sluice::discovery
