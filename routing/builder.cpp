// build_snapshot: Model -> immutable Snapshot. Control thread, off the request path.
#include "routing/builder.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <map>
#include <span>

#include "routing/hash.hpp"
#include "routing/matcher.hpp"
#include "routing/plugins.hpp"
#include "routing/snapshot.hpp"

namespace sluice::routing {
namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::size_t port_digits(std::uint16_t port) {
  std::size_t n = 1;
  while (port >= 10) {
    port = static_cast<std::uint16_t>(port / 10);
    ++n;
  }
  return n;
}

// Writes the decimal port at `out`; returns the end.
char* append_port(char* out, std::uint16_t port) {
  const std::size_t n = port_digits(port);
  for (std::size_t i = n; i-- > 0;) {
    out[i] = static_cast<char>('0' + port % 10);
    port = static_cast<std::uint16_t>(port / 10);
  }
  return out + n;
}

char* append(char* out, std::string_view s) {
  if (!s.empty()) std::memcpy(out, s.data(), s.size());
  return out + s.size();
}

// Places the services' clusters for one snapshot build by their multi-cluster policies: the registered
// plugin a service names, else the policy registered under its lb_type's name (the built-in, unless a
// program replaced it; routing/plugins.cpp). Each name is looked up in the registry once per build, not
// once per service, and the buffers are reused from service to service.
class Placer {
 public:
  explicit Placer(const std::string& local) : local_(local) {}

  // out[i] is svc.clusters[i]'s tier (-1: unused) and weight; valid until the next call. `by_plugin`:
  // the service's named plugin decided.
  std::span<const ClusterPlacement> place(const config::Service& svc, bool& by_plugin) {
    const MultiClusterPolicy& policy = resolve(svc.policy, by_plugin);
    clusters_.clear();
    for (const auto& ce : svc.clusters) {
      clusters_.push_back(ClusterInfo{ce.cluster, ce.cluster == local_, ce.endpoints.size()});
    }
    out_.assign(clusters_.size(), ClusterPlacement{});
    policy.place(svc, local_, clusters_, out_);
    // Tiers past this many are unused: a plugin bug must not make a snapshot with millions of empty tiers.
    constexpr int kMaxTier = 64;
    for (auto& p : out_) {
      if (!(p.tier >= 0 && p.tier < kMaxTier && p.weight >= 0)) p = ClusterPlacement{};
    }
    return out_;
  }

 private:
  const MultiClusterPolicy& resolve(const config::TrafficPolicy& policy, bool& by_plugin) {
    by_plugin = false;
    if (!policy.plugin.empty()) {
      auto it = plugins_.find(policy.plugin);
      if (it == plugins_.end()) {
        it = plugins_.emplace(policy.plugin, find_multi_cluster_policy(policy.plugin)).first;
      }
      if (it->second) {
        by_plugin = true;
        return *it->second;
      }
    }
    auto& builtin = by_type_.at(static_cast<std::size_t>(policy.lb_type));
    if (!builtin) {
      config::TrafficPolicy plain;
      plain.lb_type = policy.lb_type;
      builtin = resolve_multi_cluster_policy(plain);
    }
    return *builtin;
  }

  const std::string& local_;
  std::map<std::string, std::shared_ptr<const MultiClusterPolicy>, std::less<>> plugins_;  // null: unregistered
  std::array<std::shared_ptr<const MultiClusterPolicy>, 3> by_type_;  // by LbType
  std::vector<ClusterInfo> clusters_;
  std::vector<ClusterPlacement> out_;
};

// A cluster the service's policy uses, with its placement.
struct Placed {
  const config::ClusterEndpoints* ce;
  ClusterPlacement at;
};

// Room for `n` more identity bytes in the snapshot's identity blocks.
char* identity_space(SnapshotStorage& storage, std::size_t n) {
  constexpr std::size_t kIdentityBlock = 1 << 20;
  if (storage.identity_room < n) {
    const std::size_t size = std::max(n, kIdentityBlock);
    storage.identity_blocks.push_back(std::make_unique<char[]>(size));
    storage.identity_end = storage.identity_blocks.back().get();
    storage.identity_room = size;
  }
  return storage.identity_end;
}

void build_service(const config::Service& svc, const std::string& local, Placer& placer, EndpointRegistry& registry,
                   Clock::time_point now, std::vector<Placed>& placed, SnapshotStorage& storage, ServiceEntry& out) {
  out.name = svc.name;
  out.name_space = svc.name_space;
  out.ports = svc.ports;
  // The policy by name (a plugin, or a built-in a program may have replaced); a built-in's name also
  // sets the kind (hash keys are computed for Hashing).
  out.load_balancer = builtin_load_balancer(svc.load_balancer_plugin).value_or(svc.load_balancer);
  out.lb_plugin = resolve_load_balancer(svc);
  out.hash = svc.hash;
  out.session_sticky = svc.session_sticky;
  out.policy = svc.policy;
  out.outlier = svc.outlier_detection;
  out.health_check = svc.health_check;
  out.retry = svc.retry;
  out.tunnel = svc.tunnel;
  out.slow_start_window = to_ticks(std::chrono::duration_cast<Clock::duration>(svc.slow_start_window));
  bool existed = false;
  out.state = registry.acquire_service(out.id, &existed);

  placed.clear();
  bool by_plugin = false;
  const std::span<const ClusterPlacement> placements = placer.place(svc, by_plugin);
  if (by_plugin) out.multi_cluster_plugin = svc.policy.plugin;
  for (std::size_t i = 0; i < svc.clusters.size(); ++i) {
    const auto& ce = svc.clusters[i];
    const ClusterPlacement at = placements[i];
    if (at.tier < 0) {
      if (!ce.endpoints.empty()) out.unused_clusters.push_back(ce.cluster);
      continue;
    }
    placed.push_back({&ce, at});
  }
  std::stable_sort(placed.begin(), placed.end(),
                   [](const Placed& a, const Placed& b) { return a.at.tier < b.at.tier; });

  std::size_t identity_bytes = 0;
  for (const auto& p : placed) {
    for (const auto& ep : p.ce->endpoints) {
      identity_bytes += out.id.size() + p.ce->cluster.size() + ep.address.size() + 3 + port_digits(ep.port);
    }
  }
  char* const identity_start = identity_space(storage, identity_bytes);
  char* identity_end = identity_start;

  const std::size_t first_endpoint = storage.endpoints.size();
  const std::size_t first_cluster = storage.clusters.size();
  const std::size_t first_token = storage.tokens.size();
  for (const auto& p : placed) {
    ClusterEntry& ce = storage.clusters.emplace_back();
    ce.key = p.ce->cluster;
    ce.key_hash = hash64(ce.key) | 1;  // never 0 (0 means "no cluster yet" to a retry)
    ce.path_prefix = p.ce->path_prefix;
    ce.local = ce.key == local;
    ce.tier = static_cast<unsigned>(p.at.tier);
    ce.weight = p.at.weight;
    ce.tls = p.ce->tls;
    ce.protocol = p.ce->protocol;
    ce.first = static_cast<std::uint32_t>(storage.endpoints.size() - first_endpoint);
    const auto cluster_index = static_cast<std::uint32_t>(storage.clusters.size() - 1 - first_cluster);
    for (const auto& ep : p.ce->endpoints) {
      const bool usable = ep.ready || ep.terminating;
      if (!usable) {
        ++out.not_ready;
        continue;
      }
      EndpointEntry& e = storage.endpoints.emplace_back();
      e.address = ep.address;
      e.port = ep.port;
      e.weight = ep.weight;
      e.terminating = ep.terminating;
      e.index = static_cast<std::uint32_t>(storage.endpoints.size() - 1 - first_endpoint);
      e.cluster = cluster_index;
      // The identity "service|cluster|address:port", written into the snapshot's identity block.
      char* const start = identity_end;
      identity_end = append(identity_end, out.id);
      *identity_end++ = '|';
      identity_end = append(identity_end, ce.key);
      *identity_end++ = '|';
      identity_end = append(identity_end, ep.address);
      *identity_end++ = ':';
      identity_end = append_port(identity_end, ep.port);
      e.identity = std::string_view(start, static_cast<std::size_t>(identity_end - start));
      e.token = hash64(e.identity);
      e.state = registry.acquire_endpoint(e.identity, e.token, out.state, existed, now);
      storage.tokens.emplace_back(e.token, e.index);
    }
    ce.count = static_cast<std::uint32_t>(storage.endpoints.size() - first_endpoint) - ce.first;
  }
  storage.identity_end = identity_end;
  storage.identity_room -= static_cast<std::size_t>(identity_end - identity_start);

  out.endpoints = std::span(storage.endpoints).subspan(first_endpoint);
  out.clusters = std::span(storage.clusters).subspan(first_cluster);
  std::sort(storage.tokens.begin() + static_cast<std::ptrdiff_t>(first_token), storage.tokens.end());
  out.by_token = std::span(storage.tokens).subspan(first_token);

  out.tier_count = out.clusters.empty() ? 1 : out.clusters.back().tier + 1;

}

// Reserves the snapshot's storage for every service of `model` (upper bounds: duplicates and endpoints
// that are not ready are counted too), so that the services' spans never move.
void reserve_storage(const Model& model, SnapshotStorage& storage) {
  std::size_t endpoints = 0, clusters = 0;
  for (const auto& svc : model.services) {
    clusters += svc.clusters.size();
    for (const auto& ce : svc.clusters) endpoints += ce.endpoints.size();
  }
  storage.endpoints.reserve(endpoints);
  storage.tokens.reserve(endpoints);
  storage.clusters.reserve(clusters);
}

// Ranks routes for matching within a host (ranks_before, matcher.hpp), else config order. rank[route] =
// its position in that order.
std::vector<std::uint32_t> route_ranks(std::span<const RouteEntry> routes) {
  std::vector<std::uint32_t> order(routes.size());
  for (std::uint32_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return ranks_before(routes[a], routes[b]); });
  std::vector<std::uint32_t> rank(routes.size());
  for (std::uint32_t k = 0; k < order.size(); ++k) rank[order[k]] = k;
  return rank;
}

}  // namespace

std::shared_ptr<Snapshot> build_snapshot(const Model& model, EndpointRegistry& registry,
                                         std::chrono::steady_clock::time_point now) {
  auto snap = std::make_shared<Snapshot>();
  snap->local_cluster = model.local.key();
  snap->stale = model.stale;
  snap->source = model.source;
  snap->built_at = now;

  registry.begin_build();
  Placer placer(snap->local_cluster);
  std::vector<Placed> placed;
  reserve_storage(model, snap->storage);
  snap->services.reserve(model.services.size());
  std::size_t capacity = 16;
  while (capacity < 2 * model.services.size()) capacity *= 2;
  snap->service_index.assign(capacity, 0);
  const std::size_t mask = capacity - 1;
  std::string id;
  for (const auto& svc : model.services) {
    id.assign(svc.name).append(1, '.').append(svc.name_space);  // config::Service::id() without a temporary
    std::size_t slot = HostIndex::hash(id) & mask;
    bool duplicate = false;
    for (; snap->service_index[slot] != 0; slot = (slot + 1) & mask) {
      if (snap->services[snap->service_index[slot] - 1].id == id) {
        duplicate = true;  // first definition wins
        break;
      }
    }
    if (duplicate) continue;
    auto& entry = snap->services.emplace_back();
    entry.index = static_cast<std::uint32_t>(snap->services.size() - 1);
    entry.id = id;
    build_service(svc, snap->local_cluster, placer, registry, now, placed, snap->storage, entry);
    snap->service_index[slot] = entry.index + 1;
  }
  registry.end_build(now);

  snap->routes.reserve(model.routes.size());
  for (const auto& r : model.routes) {
    RouteEntry& e = snap->routes.emplace_back();
    e.index = static_cast<std::uint32_t>(snap->routes.size() - 1);
    e.listener = r.listener;
    e.path = r.path.empty() ? "/" : r.path;
    e.path_match = r.path_match;
    e.service_id = r.service;
    e.service = snap->find_service(r.service);
    e.host_rewrite = r.host_rewrite;
    e.rewrite_from = r.rewrite_from;
    e.rewrite_to = r.rewrite_to;
    for (const auto& h : r.hosts) e.hosts.push_back(lowercase(h));
  }
  const std::vector<std::uint32_t> rank = route_ranks(snap->routes);
  std::vector<HostIndex::Entry> host_entries;
  host_entries.reserve(snap->routes.size() * 2);
  for (const RouteEntry& e : snap->routes) {
    for (const std::string& host : e.hosts) {
      if (host == "*") {
        if (snap->wildcard_routes.empty() || snap->wildcard_routes.back() != e.index) {
          snap->wildcard_routes.push_back(e.index);
        }
        continue;
      }
      if (strip_port(host).size() != host.size()) snap->hosts_with_port = true;
      host_entries.push_back({host, e.index, rank[e.index],
                              e.service ? e.service->index : HostIndex::kNoService});
    }
  }
  snap->hosts.build(std::move(host_entries));
  std::stable_sort(snap->wildcard_routes.begin(), snap->wildcard_routes.end(),
                   [&](std::uint32_t a, std::uint32_t b) { return rank[a] < rank[b]; });
  return snap;
}

}  // namespace sluice::routing
