// Helpers for routing tests: small models, a fake clock, request views.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "routing/builder.hpp"
#include "routing/picker.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

namespace sluice::routing::test {

using namespace std::chrono_literals;

inline const std::string kLocal = "default/default/default/local";
inline const std::string kC1 = "default/default/default/cluster-1";
inline const std::string kC2 = "default/default/default/cluster-2";
inline const std::string kC3 = "default/default/default/cluster-3";

// A fake clock far from zero (like a real steady clock), advanced explicitly.
struct FakeClock {
  Clock::time_point now = Clock::time_point(std::chrono::hours(1000));
  void advance(Clock::duration d) { now += d; }
};

inline config::Endpoint ep(std::string address, std::uint16_t port = 8080, std::uint32_t weight = 1) {
  config::Endpoint e;
  e.address = std::move(address);
  e.port = port;
  e.weight = weight;
  return e;
}

inline config::ClusterEndpoints cluster(std::string key, std::vector<config::Endpoint> eps,
                                        std::string prefix = "") {
  config::ClusterEndpoints c;
  c.cluster = std::move(key);
  c.endpoints = std::move(eps);
  c.path_prefix = std::move(prefix);
  return c;
}

// n local endpoints 10.0.0.1.. with equal weights.
inline std::vector<config::Endpoint> endpoints(int n, const std::string& net = "10.0.0.") {
  std::vector<config::Endpoint> v;
  for (int i = 1; i <= n; ++i) v.push_back(ep(net + std::to_string(i)));
  return v;
}

inline config::Service service(std::string name, std::vector<config::ClusterEndpoints> clusters) {
  config::Service s;
  s.name = std::move(name);
  s.name_space = "default";
  s.ports = {8080};
  s.clusters = std::move(clusters);
  return s;
}

inline config::Route route(std::vector<std::string> hosts, std::string service, std::string path = "/",
                           config::PathMatch match = config::PathMatch::prefix) {
  config::Route r;
  r.hosts = std::move(hosts);
  r.service = std::move(service);
  r.path = std::move(path);
  r.path_match = match;
  return r;
}

inline Model model_of(std::vector<config::Service> services, std::vector<config::Route> routes = {}) {
  Model m;
  m.local.name = "local";
  if (routes.empty()) {
    for (const auto& s : services) routes.push_back(route({s.name}, s.id()));
  }
  m.services = std::move(services);
  m.routes = std::move(routes);
  return m;
}

// Table + registry + one picker over a model, with a fake clock.
struct Harness {
  explicit Harness(const Model& m, std::uint64_t seed = 42) : picker(table, seed) { publish(m); }

  void publish(const Model& m) { table.publish(build_snapshot(m, registry, clock.now)); }

  RequestView request(std::string_view host, std::string_view target = "/") {
    RequestView r;
    r.listener = "main";
    r.host = host;
    r.target = target;
    r.method = "GET";
    r.client_address = "192.0.2.1";
    return r;
  }

  // Picks once and finishes with `outcome`; returns the endpoint address ("" when not ok).
  std::string pick_finish(const RequestView& req, Outcome outcome = Outcome::success) {
    AttemptState a;
    auto r = picker.pick(req, a, clock.now);
    if (r.status != PickStatus::ok) return "";
    picker.finish(r, outcome, clock.now);
    return r.address;
  }

  // Counts endpoint addresses over n picks (each finished with success).
  std::map<std::string, int> spread(std::string_view host, int n) {
    std::map<std::string, int> counts;
    auto req = request(host);
    for (int i = 0; i < n; ++i) ++counts[pick_finish(req)];
    return counts;
  }

  EndpointRegistry registry;
  Table table;
  FakeClock clock;
  Picker picker;
};

}  // namespace sluice::routing::test
