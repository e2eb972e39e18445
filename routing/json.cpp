#include "routing/json.hpp"

#include <nlohmann/json.hpp>

#include "config/text.hpp"
#include "routing/health.hpp"
#include "routing/matcher.hpp"
#include "routing/picker.hpp"
#include "routing/plugins.hpp"
#include "routing/snapshot.hpp"
#include "routing/view.hpp"

namespace sluice::routing {
namespace {

using nlohmann::json;

const char* check_name(HealthCheckState s) {
  switch (s) {
    case HealthCheckState::unknown: return "unknown";
    case HealthCheckState::healthy: return "healthy";
    case HealthCheckState::unhealthy: return "unhealthy";
  }
  return "unknown";
}

json endpoint_json(const ServiceEntry& svc, const EndpointEntry& ep, Ticks now, const ServiceView& view) {
  const EndpointHealth h = evaluate(svc, ep, now);
  const EndpointState& s = *ep.state;
  json j = {{"address", ep.address},
            {"port", ep.port},
            {"weight", ep.weight},
            {"identity", ep.identity},
            {"healthy", h.healthy},
            {"ejected", h.ejected},
            {"ejections", s.ejection_count.load(std::memory_order_relaxed)},
            {"active", s.active.load(std::memory_order_relaxed)},
            {"consecutive_failures", s.consecutive_failures.load(std::memory_order_relaxed)},
            {"consecutive_gateway_failures", s.consecutive_gateway.load(std::memory_order_relaxed)},
            {"consecutive_local_origin_failures", s.consecutive_local.load(std::memory_order_relaxed)},
            {"requests", s.requests_total.load(std::memory_order_relaxed)},
            {"failures", s.failures_total.load(std::memory_order_relaxed)},
            {"health_check", check_name(s.health_check.load(std::memory_order_relaxed))},
            {"slow_start", h.ramp}};
  if (ep.terminating) j["terminating"] = true;
  if (h.ejected) {
    j["ejection_reason"] = to_string(h.reason);
    j["dead"] = h.dead;
    const Ticks probe = s.next_probe.load(std::memory_order_relaxed);
    if (probe != kNever) j["next_probe_in_ms"] = std::max<Ticks>(0, probe - now) / 1000000;
    j["probe_failures"] = s.probe_failures.load(std::memory_order_relaxed);
    j["backstop_in_ms"] = (s.ejected_until.load(std::memory_order_relaxed) - now) / 1000000;
  }
  if (s.damping.load(std::memory_order_relaxed) > 0) j["flap_damping"] = s.damping.load(std::memory_order_relaxed);
  if (stalled(s, now)) j["stalled"] = true;
  const ClusterEntry& c = svc.clusters[ep.cluster];
  if (c.tier < view.tiers.size()) {
    for (const auto& cand : view.tiers[c.tier].candidates) {
      if (cand.endpoint == ep.index) j["effective_weight"] = cand.weight;
    }
  }
  return j;
}

json ejections_by_reason(const ServiceState& st) {
  json j = json::object();
  for (auto r : {EjectionReason::local_origin, EjectionReason::gateway_error, EjectionReason::http_5xx}) {
    j[to_string(r)] = st.ejections_by_reason[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
  }
  return j;
}

json service_json(const ServiceEntry& svc, Ticks now) {
  ServiceView view;
  inspect_view(svc, now, view);
  json tiers = json::array();
  for (std::uint32_t t = 0; t < svc.tier_count; ++t) {
    const TierView& tv = view.tiers[t];
    json clusters = json::array();
    for (std::uint32_t ci : svc.tier_clusters(t)) {
      const ClusterEntry& c = svc.clusters[ci];
      json eps = json::array();
      std::size_t healthy = 0, total = 0;
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) {
        eps.push_back(endpoint_json(svc, svc.endpoints[i], now, view));
        if (svc.endpoints[i].terminating) continue;
        ++total;
        if (evaluate(svc, svc.endpoints[i], now).healthy) ++healthy;
      }
      json cj = {{"key", c.key},
                 {"local", c.local},
                 {"state", to_string(cluster_health(healthy, total, svc.policy.overprovisioning))},
                 {"endpoints", std::move(eps)}};
      if (!c.path_prefix.empty()) cj["path_prefix"] = c.path_prefix;
      if (c.protocol != config::UpstreamProtocol::http1) cj["protocol"] = std::string(config::to_string(c.protocol));
      if (c.weight > 0) cj["weight"] = c.weight;
      clusters.push_back(std::move(cj));
    }
    tiers.push_back({{"tier", t},
                     {"load_percent", tv.load.load},
                     {"health_percent", tv.load.health},
                     {"panic", tv.load.panic},
                     {"healthy_endpoints", tv.health.healthy_count},
                     {"reachable_endpoints", tv.health.reachable},
                     {"endpoints", tv.health.total},
                     {"clusters", std::move(clusters)}});
  }
  const ServiceState& st = *svc.state;
  return {{"id", svc.id},
          {"policy", svc.multi_cluster_plugin.empty() ? std::string(config::to_string(svc.policy.lb_type))
                                                      : "plugin:" + svc.multi_cluster_plugin},
          {"load_balancer", svc.lb_plugin && !svc.lb_plugin->builtin ? "plugin:" + svc.lb_plugin->name
                                                                      : std::string(config::to_string(svc.load_balancer))},
          {"session_sticky", svc.session_sticky.enabled},
          {"tiers", std::move(tiers)},
          {"unused_clusters", svc.unused_clusters},
          {"not_ready", svc.not_ready},
          {"active_requests", svc.active_requests()},
          {"active_retries", st.active_retries.load(std::memory_order_relaxed)},
          {"retries", st.retries_total.load(std::memory_order_relaxed)},
          {"local_origin_retries", st.local_retries_total.load(std::memory_order_relaxed)},
          {"retry_budget_exhausted", st.budget_exhausted.load(std::memory_order_relaxed)},
          {"ejections", st.ejections_total.load(std::memory_order_relaxed)},
          {"ejections_by_reason", ejections_by_reason(st)},
          {"ejections_refused", st.ejections_refused.load(std::memory_order_relaxed)},
          {"returns", {{"probe", st.returns_probe.load(std::memory_order_relaxed)},
                       {"timer", st.returns_timer.load(std::memory_order_relaxed)}}}};
}

json route_json(const RouteEntry& r) {
  json j = {{"index", r.index},
            {"hosts", r.hosts},
            {"path", r.path},
            {"match", config::to_string(r.path_match)},
            {"service", r.service_id}};
  if (!r.listener.empty()) j["listener"] = r.listener;
  if (!r.host_rewrite.empty()) j["host_rewrite"] = r.host_rewrite;
  if (!r.rewrite_from.empty()) j["rewrite"] = {{"from", r.rewrite_from}, {"to", r.rewrite_to}};
  if (!r.service) j["error"] = "unknown service";
  return j;
}

}  // namespace

json snapshot_to_json(const Snapshot& snap, Clock::time_point now) {
  const Ticks t = to_ticks(now);
  json services = json::array();
  for (const auto& svc : snap.services) services.push_back(service_json(svc, t));
  json routes = json::array();
  for (const auto& r : snap.routes) routes.push_back(route_json(r));
  return {{"generation", snap.generation},
          {"source", snap.source},
          {"stale", snap.stale},
          {"local_cluster", snap.local_cluster},
          {"services", std::move(services)},
          {"routes", std::move(routes)}};
}

json explain(const Snapshot& snap, const RequestView& req, Clock::time_point now) {
  json j = {{"listener", req.listener}, {"host", req.host}, {"target", req.target}};
  const RouteEntry* route = match_route(snap, req.listener, req.host, req.target);
  if (!route) {
    j["route"] = nullptr;
    j["reason"] = "no route matches host and path";
    return j;
  }
  j["route"] = route_json(*route);
  if (!route->service) {
    j["reason"] = "the route names an unknown service";
    return j;
  }
  const ServiceEntry& svc = *route->service;
  j["service"] = service_json(svc, to_ticks(now));
  ServiceView view;
  inspect_view(svc, to_ticks(now), view);
  json candidates = json::array();
  for (std::size_t t = 0; t < view.tiers.size(); ++t) {
    for (const auto& c : view.tiers[t].candidates) {
      const EndpointEntry& ep = svc.endpoints[c.endpoint];
      std::string target;
      upstream_target(*route, svc.clusters[ep.cluster].path_prefix, req.target, target);
      candidates.push_back({{"tier", t},
                            {"cluster", svc.clusters[ep.cluster].key},
                            {"address", ep.address},
                            {"port", ep.port},
                            {"effective_weight", c.weight},
                            {"tier_load_percent", view.tiers[t].load.load},
                            {"upstream_target", target}});
    }
  }
  j["candidates"] = std::move(candidates);
  if (!view.has_candidates) {
    j["reason"] = view.fallback.empty() ? "no usable endpoint under the service's traffic policy"
                                        : "only terminating endpoints are left";
  }
  return j;
}

}  // namespace sluice::routing
