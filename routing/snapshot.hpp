// The immutable routing snapshot: services -> per-cluster endpoint groups -> endpoints, grouped into
// priority tiers by the service's multi-cluster policy, plus the routes that select a service.
//
// Built by build_snapshot() (builder.cpp) on the control thread, published through Table, then only read.
// Mutable per-endpoint state lives in EndpointState objects the entries point to (endpoint_state.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "routing/clock.hpp"
#include "routing/endpoint_state.hpp"
#include "routing/hash.hpp"
#include "routing/host_index.hpp"
#include "routing/huge_pages.hpp"

namespace sluice::routing {

struct LbPlugin;

// Field order: what a pick reads first (address, state, token, port, cluster), the rest after.
struct EndpointEntry {
  std::string address;
  std::shared_ptr<EndpointState> state;
  std::uint64_t token = 0;        // hash64(identity): sticky cookie value, hash ring position, retry memory
  std::uint16_t port = 0;
  bool terminating = false;       // serving but terminating: used only when nothing else is left
  std::uint32_t cluster = 0;      // index in ServiceEntry::clusters
  std::uint32_t weight = 1;
  std::uint32_t index = 0;        // in ServiceEntry::endpoints
  // Registry key "service|cluster|address:port". Points into the snapshot's identity blocks (not one
  // string per endpoint); valid as long as the snapshot.
  std::string_view identity;
};

struct ClusterEntry {
  std::string key;                // region/zone/group/name
  std::uint64_t key_hash = 0;     // hash64(key), never 0: a retry's memory of the cluster it left
  std::string path_prefix;        // remote gateway: the export's path, prepended to the request path
  bool local = false;
  unsigned tier = 0;
  double weight = 0;              // ActiveActive share of the tier's traffic; 0: by endpoint weights
  std::uint32_t first = 0;        // endpoints [first, first + count) in ServiceEntry::endpoints
  std::uint32_t count = 0;
  std::optional<config::TlsClient> tls;
  config::UpstreamProtocol protocol = config::UpstreamProtocol::http1;
};

// Aligned to a cache line, with what every pick reads (index, policy, state, endpoints, clusters, tiers,
// retry limits, stickiness, id) in the first two lines: with 10k services most picks find it cold.
struct alignas(64) ServiceEntry {
  std::uint32_t index = 0;        // in Snapshot::services
  config::LoadBalancer load_balancer = config::LoadBalancer::round_robin;
  std::shared_ptr<ServiceState> state;
  // These spans point into the snapshot's storage (SnapshotStorage).
  std::span<const EndpointEntry> endpoints;  // grouped by cluster (ClusterEntry::first/count)
  std::span<const ClusterEntry> clusters;    // the clusters the policy uses, tier by tier
  config::RetryPolicy retry;
  config::SessionSticky session_sticky;
  std::string id;                 // name.namespace
  std::uint32_t tier_count = 1;              // tiers 0 .. tier_count-1 (0: local first); empty ones possible
  config::HashPolicy hash;
  std::string name;
  std::string name_space;
  std::vector<std::uint16_t> ports;
  config::TrafficPolicy policy;
  config::OutlierDetection outlier;
  config::HealthCheck health_check;
  config::Tunnel tunnel;
  Ticks slow_start_window = 0;

  std::vector<std::string> unused_clusters;  // clusters with endpoints that the policy leaves out (explain)
  std::uint32_t not_ready = 0;            // endpoints left out as not ready (explain)
  // The service's load-balancing policy (resolve_load_balancer: its plugin, else its load_balancer's
  // built-in). Read when a worker builds its view of the service, never on a pick.
  std::shared_ptr<const LbPlugin> lb_plugin;
  std::string multi_cluster_plugin;       // the policy plugin that placed the clusters (explain), or ""

  // The indices [first, last) into `clusters`, for a range-for. Not std::views::iota: clang 14 (the fuzzers'
  // compiler, tests/fuzz) cannot compile libstdc++ 12's <ranges>.
  struct IndexRange {
    struct iterator {
      std::uint32_t i;
      std::uint32_t operator*() const { return i; }
      iterator& operator++() {
        ++i;
        return *this;
      }
      bool operator!=(const iterator& o) const { return i != o.i; }
    };
    std::uint32_t first = 0, last = 0;
    iterator begin() const { return {first}; }
    iterator end() const { return {last}; }
  };

  // The indices into `clusters` of tier t's clusters: they are stored tier by tier, so these are a range.
  IndexRange tier_clusters(std::uint32_t t) const {
    std::uint32_t begin = 0;
    while (begin < clusters.size() && clusters[begin].tier < t) ++begin;
    std::uint32_t end = begin;
    while (end < clusters.size() && clusters[end].tier == t) ++end;
    return IndexRange{begin, end};
  }

  // Requests in flight to the service, from every worker: the sum of its endpoints' (read by the retry
  // budget and the admin output, rarely; a service-wide counter would be one more shared line per pick).
  std::int64_t active_requests() const {
    std::int64_t n = 0;
    for (const auto& ep : endpoints) n += ep.state->active.load(std::memory_order_relaxed);
    return n;
  }

  // The endpoint with this token, or nullptr (sticky cookies). Binary search over by_token.
  const EndpointEntry* find_token(std::uint64_t token) const {
    std::size_t lo = 0, hi = by_token.size();
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (by_token[mid].first < token) lo = mid + 1;
      else hi = mid;
    }
    return lo < by_token.size() && by_token[lo].first == token ? &endpoints[by_token[lo].second] : nullptr;
  }
  // (token, index in endpoints), sorted by token: a flat array instead of a hash node per endpoint.
  std::span<const std::pair<std::uint64_t, std::uint32_t>> by_token;
};

// The storage behind every service's spans: one block per kind for the whole snapshot instead of several
// per service, so that a rebuild of 10k services allocates and frees some 60k blocks fewer. The vectors
// are reserved from the model's sizes before the first service is built and never grow past that, so
// the spans never move.
// The arrays a lookup reads at random are in huge pages (huge_pages.hpp).
struct SnapshotStorage {
  HugeVector<EndpointEntry> endpoints;
  HugeVector<ClusterEntry> clusters;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> tokens;
  std::vector<std::unique_ptr<char[]>> identity_blocks;  // the endpoints' identities, back to back
  char* identity_end = nullptr;                          // free space in the last block
  std::size_t identity_room = 0;
};

// Field order: what matching and a pick read first.
struct RouteEntry {
  std::uint32_t index = 0;        // in Snapshot::routes (config order)
  config::PathMatch path_match = config::PathMatch::prefix;
  const ServiceEntry* service = nullptr;  // null: the route names an unknown service
  std::string listener;           // empty: every listener
  std::string path = "/";
  std::string rewrite_from;
  std::string host_rewrite;
  std::string rewrite_to;
  std::string service_id;
  std::vector<std::string> hosts; // lowercased
};

// Heterogeneous lookup by string_view, so a request's host needs no std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Snapshot {
  std::uint64_t generation = 0;   // set by Table::publish
  std::string local_cluster;      // key of the local cluster
  bool stale = false;
  std::string source;
  Clock::time_point built_at{};

  SnapshotStorage storage;  // declared before services: it must outlive their spans
  HugeVector<ServiceEntry> services;
  HugeVector<RouteEntry> routes;
  // Lowercased route host (with or without port) -> routes, best first (longest path, exact before prefix).
  HostIndex hosts;
  std::vector<std::uint32_t> wildcard_routes;  // routes with host "*", best first
  bool hosts_with_port = false;                // some route host has a ":port"

  // The service named `id` ("name.namespace"), or nullptr.
  const ServiceEntry* find_service(std::string_view id) const {
    if (service_index.empty()) return nullptr;
    const std::size_t mask = service_index.size() - 1;
    for (std::size_t i = HostIndex::hash(id) & mask;; i = (i + 1) & mask) {
      const std::uint32_t entry = service_index[i];
      if (entry == 0) return nullptr;
      if (services[entry - 1].id == id) return &services[entry - 1];
    }
  }
  // Open addressing over HostIndex::hash(id): services index + 1, 0 = empty; power-of-two size, at most
  // half full (one allocation, no node per service).
  std::vector<std::uint32_t> service_index;
};

}  // namespace sluice::routing
