// Routing plugins: load-balancing policies and multi-cluster policies that a program registers by name
// and a service selects in its config ("load_balancer_plugin", "policy": {"plugin"}). Public header
// (installed with libsluice): standard library and config/config.hpp only.
//
// Multi-cluster policies: the built-in Locality, ActiveActive and FailOver are MultiClusterPolicy objects
// in the same registry, under those names; a snapshot build asks the registry for the service's plugin,
// else for its lb_type's name (one code path). A program may replace a built-in by registering its name.
// Load-balancing policies: the built-in RoundRobin, Random, LeastWork and Hashing keep their own per-pick
// dispatch (no virtual call on the hot path); their names resolve through builtin_load_balancer(), so
// "load_balancer_plugin": "LeastWork" selects the built-in. A plugin costs a virtual call per pick only
// for the services that name it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace sluice::routing {

// One endpoint a load-balancing plugin may pick: usable (healthy, or the tier is in panic) and not
// excluded by the retry rules or the pending-request limit. Views are valid for the call only.
struct LbEndpoint {
  std::string_view address;
  std::uint16_t port = 0;
  std::string_view cluster;    // cluster key region/zone/group/name
  bool local = false;          // in the proxy's own cluster
  double weight = 0;           // effective weight: endpoint weight * cluster share * slow-start factor
  std::int64_t active = 0;     // requests in flight to it (all workers)
  std::uint64_t token = 0;     // stable hash of its identity (service, cluster, address, port)
};

// What a load-balancing plugin knows about the request.
struct LbRequest {
  std::string_view service;                // "name.namespace"
  unsigned tier = 0;                       // FailOver tier the candidates belong to (0: first)
  std::optional<std::uint64_t> hash_key;   // the service's hash key for this request, when it has one
  bool retry = false;                      // a retry: the endpoints already tried are not candidates
};

// A load-balancing policy. One instance per worker thread and service (and routing snapshot), made by
// the registered factory, so an instance needs no locks; state shared across workers or kept across
// routing updates belongs in the factory (thread-safe).
class LoadBalancingPolicy {
 public:
  virtual ~LoadBalancingPolicy() = default;

  // Returns the index in `candidates` (never empty) of the endpoint to use, or -1 for none (the pick
  // then tries the next tier, and the request may get 503). Worker thread; must not block.
  virtual int pick(const LbRequest& request, std::span<const LbEndpoint> candidates) = 0;

  // How an attempt on an endpoint this instance picked went: `ok` false for connect failures, resets,
  // timeouts and 5xx; `latency` from the pick to the outcome. Worker thread. Default: ignored.
  virtual void finished(const LbEndpoint& endpoint, bool ok, std::chrono::nanoseconds latency) {
    (void)endpoint, (void)ok, (void)latency;
  }
};

// Makes the policy instance for one worker and service ("name.namespace"). Any thread; may be called
// concurrently.
using LoadBalancingFactory = std::function<std::unique_ptr<LoadBalancingPolicy>(std::string_view service)>;

// What a multi-cluster policy knows about one of a service's clusters.
struct ClusterInfo {
  std::string_view key;        // region/zone/group/name
  bool local = false;
  std::size_t endpoints = 0;   // endpoints listed (ready or not)
};

// Where a multi-cluster policy puts a cluster.
struct ClusterPlacement {
  int tier = -1;       // priority tier: 0 takes the traffic first, higher tiers on failover; -1: unused
  double weight = 0;   // share of the tier's traffic relative to the other clusters of the tier; 0: by
                       // endpoint weights (like ActiveActive without target weights)
};

// A multi-cluster policy: places a service's clusters into tiers when a routing snapshot is built.
class MultiClusterPolicy {
 public:
  virtual ~MultiClusterPolicy() = default;

  // Fills out[i] for clusters[i] (both the same size; out starts all unused). `service` is the config
  // (its policy.lb_type and targets are there for the plugin to interpret). Control thread, off the
  // request path; may be called from several threads for different snapshots, so keep it stateless or
  // locked.
  virtual void place(const config::Service& service, std::string_view local_cluster,
                     std::span<const ClusterInfo> clusters, std::span<ClusterPlacement> out) const = 0;
};

// Registers (or replaces) a load-balancing policy under `name`, which services select with
// "load_balancer_plugin". Takes effect for routing snapshots built afterwards. Returns false for an
// empty name or factory. Any thread.
bool register_load_balancer(const std::string& name, LoadBalancingFactory factory);

// Registers (or replaces) a multi-cluster policy under `name`, selected with "policy": {"plugin"}.
// Takes effect for routing snapshots built afterwards. Returns false for an empty name or null policy.
bool register_multi_cluster_policy(const std::string& name, std::shared_ptr<const MultiClusterPolicy> policy);

// Removes a registration (snapshots already built keep what they use). Returns whether it existed.
// Unregistering a name that replaced a built-in multi-cluster policy brings the built-in back.
bool unregister_load_balancer(const std::string& name);
bool unregister_multi_cluster_policy(const std::string& name);

// A registered load-balancing factory (shared, so snapshots keep it alive), or null.
struct LbPlugin {
  std::string name;
  LoadBalancingFactory make;
};
// Registered plugins only: null for the built-in names (see builtin_load_balancer). Any thread.
std::shared_ptr<const LbPlugin> find_load_balancer(std::string_view name);

// The built-in load balancer named "RoundRobin", "Random", "LeastWork" or "Hashing" (the config's
// spellings, ErieCanal's "...LoadBalancer" ones too), or nullopt. A registered plugin of the same name
// does not override these: the built-ins are dispatched without a virtual call. Any thread.
std::optional<config::LoadBalancer> builtin_load_balancer(std::string_view name);

// The multi-cluster policy registered as `name`, else the built-in of that name ("Locality",
// "ActiveActive", "FailOver"), else null. Any thread.
std::shared_ptr<const MultiClusterPolicy> find_multi_cluster_policy(std::string_view name);

// The policy that places `policy`'s service: its plugin when one is registered under that name, else
// the built-in for its lb_type (never null). Control thread (snapshot build); any thread is safe.
std::shared_ptr<const MultiClusterPolicy> resolve_multi_cluster_policy(const config::TrafficPolicy& policy);

// "services[i].load_balancer_plugin: no plugin registered as \"x\"" for every plugin name `services`
// use that is not registered (a snapshot falls back to the built-in policy for those). Empty: all found.
std::vector<std::string> missing_plugins(const std::vector<config::Service>& services);

}  // namespace sluice::routing
