// Routing plugins: load-balancing policies and multi-cluster policies that a program registers by name
// and a service selects in its config ("load_balancer_plugin", "policy": {"plugin"}). Public header
// (installed with libsluice): standard library and the routing state headers only.
//
// Multi-cluster policies: the built-in Locality, ActiveActive and FailOver are MultiClusterPolicy objects
// in the same registry, under those names; a snapshot build asks the registry for the service's plugin,
// else for its lb_type's name (one code path).
// Load-balancing policies: the built-in RoundRobin, Random, LeastWork and Hashing are LoadBalancingPolicy
// objects too, found in the same registry under those names (and ErieCanal's "...LoadBalancer" ones);
// every pick of every service goes through LoadBalancingPolicy::pick. A program may replace any built-in
// by registering its name.
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
#include "routing/endpoint_state.hpp"
#include "routing/rng.hpp"

namespace sluice::routing {

struct ServiceEntry;
struct Exclusion;

// One endpoint as a plugin sees it: where it is and how loaded. Views are valid for the call only.
struct LbEndpoint {
  std::string_view address;
  std::uint16_t port = 0;
  std::string_view cluster;    // cluster key region/zone/group/name
  bool local = false;          // in the proxy's own cluster
  double weight = 0;           // effective weight: endpoint weight * cluster share * slow-start factor
  std::int64_t active = 0;     // requests in flight to it (all workers)
  std::uint64_t token = 0;     // stable hash of its identity (service, cluster, address, port)
};

// What a load-balancing policy knows about the request.
struct LbRequest {
  std::string_view service;                // "name.namespace"
  unsigned tier = 0;                       // FailOver tier the candidates belong to (0: first)
  std::optional<std::uint64_t> hash_key;   // the service's hash key for this request, when it has one
  bool retry = false;                      // a retry: the endpoints already tried are not allowed
};

// One candidate of a tier, as the worker's view of the service keeps it: the healthy endpoints (or all,
// in panic) with their effective weights. The view is recomputed when the service's health changes.
struct LbCandidate {
  std::uint32_t endpoint = 0;  // index in the service's endpoints (LbTier::describe)
  std::uint32_t cluster = 0;   // index in the service's clusters
  double weight = 0;           // effective weight: endpoint weight * cluster share * slow-start factor
  // The policy's own number for this candidate (smooth round robin's current weight, for example). Kept
  // across recomputations of the view while the endpoint stays a candidate. A worker's first view of the
  // service starts each at a random value in [0, weight), so that workers do not move in step; a
  // candidate that joins later starts at 0.
  double balance = 0;
  EndpointState* state = nullptr;  // the endpoint's shared state

  // Requests in flight to the endpoint from every worker (a relaxed atomic load).
  std::int64_t active() const { return state->active.load(std::memory_order_relaxed); }
};

// Per-tier state a policy builds on first use (a hash ring, say): dropped when the tier's candidates
// change, so it never outlives the candidate list it was built from.
class LbTierState {
 public:
  virtual ~LbTierState() = default;
};

// One tier of a service at one pick: its candidates (never empty), their precomputed sums, the state the
// view keeps for the policy, the worker's random source, and which candidates this pick may not use
// (on a retry: those already tried, a failing cluster, endpoints at their pending-request limit).
// Worker thread; valid for the call only.
class LbTier {
 public:
  LbTier(std::span<LbCandidate> candidates, std::span<const double> cumulative, double total_weight,
         bool equal_weights, std::uint32_t& cursor, std::unique_ptr<LbTierState>& state, Rng& rng,
         const ServiceEntry& service, const Exclusion* exclusion)
      : candidates_(candidates), cumulative_(cumulative), total_weight_(total_weight),
        equal_weights_(equal_weights), cursor_(&cursor), state_(&state), rng_(&rng), service_(&service),
        exclusion_(exclusion) {}

  std::size_t size() const { return candidates_.size(); }
  LbCandidate& operator[](std::size_t i) const { return candidates_[i]; }
  std::span<LbCandidate> candidates() const { return candidates_; }

  // Prefix sums of the candidates' weights (cumulative()[i] = weight of 0..i), and their total.
  std::span<const double> cumulative() const { return cumulative_; }
  double total_weight() const { return total_weight_; }
  bool equal_weights() const { return equal_weights_; }

  // Whether some candidates may not be used on this pick; when false, every candidate is allowed.
  bool restricted() const { return exclusion_ != nullptr; }
  bool allowed(std::size_t i) const { return !exclusion_ || !excluded(i); }

  // The policy's per-tier number (round robin's next candidate), kept with the view; 0 when it is made.
  std::uint32_t& cursor() const { return *cursor_; }
  // The policy's per-tier state, or null; set_state() keeps one until the candidates change.
  LbTierState* state() const { return state_->get(); }
  void set_state(std::unique_ptr<LbTierState> state) const { *state_ = std::move(state); }

  Rng& random() const { return *rng_; }

  // Candidate i's address, cluster and identity token (reads the snapshot: not for every candidate of
  // every pick on a large tier).
  LbEndpoint describe(std::size_t i) const;
  std::uint64_t token(std::size_t i) const;

 private:
  bool excluded(std::size_t i) const;

  std::span<LbCandidate> candidates_;
  std::span<const double> cumulative_;
  double total_weight_;
  bool equal_weights_;
  std::uint32_t* cursor_;
  std::unique_ptr<LbTierState>* state_;
  Rng* rng_;
  const ServiceEntry* service_;
  const Exclusion* exclusion_;
};

// A load-balancing policy. The built-ins share one stateless instance (their state lives in the tier);
// a plugin's factory may instead make one instance per worker thread and service (and routing snapshot),
// which then needs no locks. State shared across workers or kept across routing updates belongs in the
// factory (thread-safe).
class LoadBalancingPolicy {
 public:
  virtual ~LoadBalancingPolicy() = default;

  // Returns the index in `tier` of the candidate to use, or -1 for none (the pick then tries the next
  // tier, and the request may get 503). A candidate that is not allowed counts as none: the core's retry
  // rules and pending-request limit hold whatever a policy returns. Worker thread; must not block.
  virtual int pick(const LbRequest& request, LbTier& tier) = 0;

  // How an attempt on an endpoint this policy picked went: `ok` false for connect failures, resets,
  // timeouts and 5xx; `latency` from the pick to the outcome. Worker thread. Called for registered
  // plugins only (never for the built-ins). Default: ignored.
  virtual void finished(const LbEndpoint& endpoint, bool ok, std::chrono::nanoseconds latency) {
    (void)endpoint, (void)ok, (void)latency;
  }
};

// The simple way to write a policy: choose among the allowed candidates, given by value. Costs a copy of
// the allowed candidates per pick, which the built-ins avoid by implementing pick() directly.
class SimpleLoadBalancingPolicy : public LoadBalancingPolicy {
 public:
  // Returns the index in `candidates` (never empty) of the endpoint to use, or -1 for none.
  virtual int choose(const LbRequest& request, std::span<const LbEndpoint> candidates) = 0;

  int pick(const LbRequest& request, LbTier& tier) final;
};

// Makes (or shares) the policy instance for one worker and service ("name.namespace"). Any thread; may
// be called concurrently. A factory returning a std::unique_ptr fits.
using LoadBalancingFactory = std::function<std::shared_ptr<LoadBalancingPolicy>(std::string_view service)>;

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
// "load_balancer_plugin" (a built-in's name replaces that built-in, also for services that select it
// with "load_balancer"). Takes effect for routing snapshots built afterwards. Returns false for an
// empty name or factory. Any thread.
bool register_load_balancer(const std::string& name, LoadBalancingFactory factory);

// Registers (or replaces) a multi-cluster policy under `name`, selected with "policy": {"plugin"}.
// Takes effect for routing snapshots built afterwards. Returns false for an empty name or null policy.
bool register_multi_cluster_policy(const std::string& name, std::shared_ptr<const MultiClusterPolicy> policy);

// Removes a registration (snapshots already built keep what they use). Returns whether it existed.
// Unregistering a name that replaced a built-in brings the built-in back.
bool unregister_load_balancer(const std::string& name);
bool unregister_multi_cluster_policy(const std::string& name);

// A load-balancing policy's factory under its name (shared, so snapshots keep it alive).
struct LbPlugin {
  std::string name;
  LoadBalancingFactory make;
  bool builtin = false;   // one of RoundRobin, Random, LeastWork, Hashing (not told outcomes)
};

// The load-balancing policy registered as `name`, else the built-in of that name ("RoundRobin",
// "Random", "LeastWork", "Hashing", or ErieCanal's "RoundRobinLoadBalancer", ...; a program's
// registration of the canonical name replaces the built-in for every spelling), else null. Any thread.
std::shared_ptr<const LbPlugin> find_load_balancer(std::string_view name);

// The built-in load balancer kind named `name` (the config's spellings, ErieCanal's "...LoadBalancer"
// ones too), or nullopt. Any thread.
std::optional<config::LoadBalancer> builtin_load_balancer(std::string_view name);

// The policy that balances `service`: its load_balancer_plugin when found, else the one registered
// under its load_balancer's name (the built-in, unless a program replaced it). Never null. Any thread.
std::shared_ptr<const LbPlugin> resolve_load_balancer(const config::Service& service);

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
