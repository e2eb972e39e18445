// Translation rules (DESIGN "Multi-cluster semantics", shared/reference/multicluster-resources.md):
// - Service + EndpointSlices labelled kubernetes.io/service-name: the local cluster's endpoints. The
//   service port whose endpoints are used is the first ServiceExport rule's portNumber when the service
//   is exported, else the first port (the model has one endpoint port per service). Slice ports match the
//   service port by name, else by the numeric targetPort, else a lone port of an unnamed service port.
//   Ready endpoints are ready; serving+terminating ones are kept marked terminating; others are left out.
// - flomesh.io ServiceImport: each spec.ports[].endpoints[] entry is an endpoint of cluster clusterKey
//   at target ip (or host):port, with target.path as the path prefix; entries of our own cluster key
//   are skipped (those are our pods, already local). A service known only by its import still becomes a
//   service, so that without a policy it answers "no endpoint" (Locality) rather than "no route".
// - multicluster.x-k8s.io ServiceImport + EndpointSlices labelled multicluster.kubernetes.io/service-name
//   and source-cluster: endpoints of that source cluster (a bare cluster name gets our region/zone/group).
// - GlobalTrafficPolicy of the same namespace/name: the service's policy.
// - ServiceExport: loadBalancer and sessionSticky go onto the service; on gateway listeners each rule is
//   a route (hosts "*", path, Prefix|Exact). Without pathRewrite the rule's path is stripped (from=path,
//   to="/"), so the sidecar's /httpbin/get reaches the pod as /get, as ErieCanal's gateway does.
#include "discovery/translate.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "routing/matcher.hpp"

namespace sluice::discovery {
namespace {

using config::ClusterEndpoints;
using config::Endpoint;

std::string key(const std::string& ns, const std::string& name) { return ns + "/" + name; }

// The slice port carrying the service port `sp`; 0 when the slice has none for it.
std::uint16_t slice_port_for(const KEndpointSlice& slice, const ServicePort& sp) {
  for (const auto& p : slice.ports)
    if (p.name == sp.name) return p.port;
  if (sp.target_port != 0)
    for (const auto& p : slice.ports)
      if (p.port == sp.target_port) return p.port;
  if (sp.name.empty() && slice.ports.size() == 1) return slice.ports.front().port;
  return 0;
}

// Appends the usable endpoints of `slice` on `port` to `out`, skipping duplicates (during a slice
// migration the same pod can be listed twice).
void add_slice_endpoints(const KEndpointSlice& slice, std::uint16_t port, std::vector<Endpoint>& out,
                         std::set<std::pair<std::string, std::uint16_t>>& seen) {
  for (const auto& e : slice.endpoints) {
    Endpoint ep;
    ep.address = e.address;
    ep.port = port;
    if (e.ready) {
      ep.ready = true;
    } else if (e.serving && e.terminating) {
      ep.ready = false;
      ep.terminating = true;
    } else {
      continue;
    }
    if (seen.emplace(ep.address, ep.port).second) out.push_back(std::move(ep));
  }
}

void add_port(config::Service& s, std::uint16_t port) {
  if (std::find(s.ports.begin(), s.ports.end(), port) == s.ports.end()) s.ports.push_back(port);
}

config::Service& service_for(std::map<std::string, config::Service>& out, const ObjectMeta& meta) {
  auto& s = out[key(meta.name_space, meta.name)];
  if (s.name.empty()) {
    s.name = meta.name;
    s.name_space = meta.name_space;
  }
  return s;
}

// The key of an MCS source cluster: keys pass through, a bare name gets the local region/zone/group.
std::string mcs_cluster_key(const std::string& source, const config::ClusterIdentity& local) {
  if (source.find('/') != std::string::npos) return source;
  return local.region + "/" + local.zone + "/" + local.group + "/" + source;
}

void add_local(const ObjectStore& store, const TranslateOptions& options,
               std::map<std::string, config::Service>& out) {
  std::map<std::string, std::vector<const KEndpointSlice*>> slices_by_service;
  for (const auto& [k, slice] : store.endpoint_slices())
    if (!slice.service_name.empty() && slice.mcs_service_name.empty())
      slices_by_service[key(slice.meta.name_space, slice.service_name)].push_back(&slice);

  for (const auto& [k, svc] : store.services()) {
    auto& s = service_for(out, svc.meta);
    for (const auto& p : svc.ports) add_port(s, p.port);
    ClusterEndpoints local;
    local.cluster = options.local.key();
    if (!svc.ports.empty()) {
      const ServicePort* chosen = &svc.ports.front();
      auto exp = store.service_exports().find(k);
      if (exp != store.service_exports().end() && !exp->second.rules.empty()) {
        for (const auto& p : svc.ports)
          if (p.port == exp->second.rules.front().port_number) chosen = &p;
      }
      std::set<std::pair<std::string, std::uint16_t>> seen;
      if (auto it = slices_by_service.find(k); it != slices_by_service.end())
        for (const KEndpointSlice* slice : it->second)
          if (auto port = slice_port_for(*slice, *chosen); port != 0)
            add_slice_endpoints(*slice, port, local.endpoints, seen);
    }
    s.clusters.push_back(std::move(local));
  }
}

void add_flomesh_imports(const ObjectStore& store, const TranslateOptions& options,
                         std::map<std::string, config::Service>& out) {
  const std::string local_key = options.local.key();
  for (const auto& [k, imp] : store.service_imports()) {
    auto& s = service_for(out, imp.meta);
    // One ClusterEndpoints per remote cluster (the routing model holds a cluster once per service). Its
    // entry points share one path prefix: a target of the same cluster with another path is left out
    // (two groups of one cluster failed validate_config; found by tests/fuzz/fuzz_kubernetes).
    std::map<std::string, ClusterEndpoints> groups;
    std::set<std::tuple<std::string, std::string, std::string, std::uint16_t>> seen;
    for (const auto& port : imp.ports) {
      add_port(s, port.port);
      for (const auto& t : port.endpoints) {
        if (t.cluster_key == local_key) continue;
        if (!seen.emplace(t.cluster_key, t.path, t.address, t.port).second) continue;
        const std::string prefix = t.path == "/" ? "" : t.path;
        auto [it, fresh] = groups.try_emplace(t.cluster_key);
        auto& g = it->second;
        if (fresh) {
          g.cluster = t.cluster_key;
          g.path_prefix = prefix;
        } else if (g.path_prefix != prefix) {
          continue;
        }
        Endpoint ep;
        ep.address = t.address;
        ep.port = t.port;
        g.endpoints.push_back(std::move(ep));
      }
    }
    for (auto& [gk, g] : groups) s.clusters.push_back(std::move(g));
  }
}

void add_mcs_imports(const ObjectStore& store, const TranslateOptions& options,
                     std::map<std::string, config::Service>& out) {
  std::map<std::string, std::vector<const KEndpointSlice*>> slices_by_service;
  for (const auto& [k, slice] : store.endpoint_slices())
    if (!slice.mcs_service_name.empty())
      slices_by_service[key(slice.meta.name_space, slice.mcs_service_name)].push_back(&slice);
  const std::string local_key = options.local.key();
  for (const auto& [k, imp] : store.mcs_service_imports()) {
    auto& s = service_for(out, imp.meta);
    for (const auto& p : imp.ports) add_port(s, p.port);
    auto it = slices_by_service.find(k);
    if (it == slices_by_service.end() || imp.ports.empty()) continue;
    ServicePort wanted{imp.ports.front().name, imp.ports.front().port, 0};
    std::map<std::string, ClusterEndpoints> groups;
    std::map<std::string, std::set<std::pair<std::string, std::uint16_t>>> seen;
    for (const KEndpointSlice* slice : it->second) {
      if (slice->mcs_source_cluster.empty()) continue;
      std::string cluster = mcs_cluster_key(slice->mcs_source_cluster, options.local);
      if (cluster == local_key) continue;
      auto port = slice_port_for(*slice, wanted);
      if (port == 0) continue;
      auto& g = groups[cluster];
      g.cluster = cluster;
      add_slice_endpoints(*slice, port, g.endpoints, seen[cluster]);
    }
    for (auto& [ck, g] : groups) s.clusters.push_back(std::move(g));
  }
}

void add_bare_names(const TranslateOptions& options, const std::map<std::string, config::Service>& services,
                    std::map<std::string, std::vector<std::string>>& hosts) {
  std::map<std::string, std::vector<const config::Service*>> by_name;
  for (const auto& [k, s] : services) by_name[s.name].push_back(&s);
  for (const auto& [name, list] : by_name) {
    const config::Service* owner = nullptr;
    for (const auto* s : list)
      if (s->name_space == options.home_namespace) owner = s;
    if (!owner && list.size() == 1) owner = list.front();
    if (!owner) continue;
    auto& names = hosts[key(owner->name_space, owner->name)];
    names.insert(names.begin(), name);
  }
}

}  // namespace

std::vector<std::string> service_host_names(const std::string& name, const std::string& ns) {
  std::string base = name + "." + ns;
  return {base, base + ".svc", base + ".svc.cluster.local", base + ".svc.clusterset.local"};
}

Translation translate(const ObjectStore& store, const TranslateOptions& options) {
  std::map<std::string, config::Service> services;
  add_local(store, options, services);
  add_flomesh_imports(store, options, services);
  add_mcs_imports(store, options, services);

  for (const auto& [k, gtp] : store.traffic_policies()) {
    auto it = services.find(k);
    if (it == services.end()) continue;
    it->second.policy.lb_type = gtp.lb_type;
    for (const auto& t : gtp.targets) it->second.policy.targets.push_back({t.cluster_key, t.weight});
  }

  Translation result;
  std::vector<config::Route> gateway_routes;
  for (const auto& [k, exp] : store.service_exports()) {
    auto it = services.find(k);
    if (it == services.end()) continue;  // nothing local to export
    if (exp.load_balancer) it->second.load_balancer = *exp.load_balancer;
    it->second.session_sticky.enabled = exp.session_sticky;
    for (const auto& rule : exp.rules) {
      for (const auto& listener : options.gateway_listeners) {
        config::Route r;
        r.listener = listener;
        r.hosts = {"*"};
        r.path = rule.path;
        r.path_match = rule.path_match;
        r.service = it->second.id();
        if (exp.rewrite_from) {
          r.rewrite_from = *exp.rewrite_from;
          r.rewrite_to = exp.rewrite_to;
        } else if (rule.path != "/") {
          r.rewrite_from = rule.path;
          r.rewrite_to = std::string(1, '/');  // not = "/": GCC 12 -Wrestrict false positive
        }
        gateway_routes.push_back(std::move(r));
      }
    }
  }
  // Listed most specific first, in routing's own precedence (routing ranks them again when matching).
  std::stable_sort(gateway_routes.begin(), gateway_routes.end(),
                   [](const config::Route& a, const config::Route& b) { return routing::ranks_before(a, b); });

  if (!options.sidecar_listeners.empty()) {
    std::map<std::string, std::vector<std::string>> hosts;
    for (const auto& [k, s] : services) hosts[k] = service_host_names(s.name, s.name_space);
    add_bare_names(options, services, hosts);
    for (const auto& [k, s] : services)
      for (const auto& listener : options.sidecar_listeners) {
        config::Route r;
        r.listener = listener;
        r.hosts = hosts[k];  // path: the default "/" prefix
        r.service = s.id();
        result.routes.push_back(std::move(r));
      }
  }
  for (auto& r : gateway_routes) result.routes.push_back(std::move(r));
  for (auto& [k, s] : services) result.services.push_back(std::move(s));
  return result;
}

}  // namespace sluice::discovery
