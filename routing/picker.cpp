#include "routing/picker.hpp"

#include <random>

#include "routing/balancer_state.hpp"
#include "routing/hash.hpp"
#include "routing/health.hpp"
#include "routing/matcher.hpp"
#include "routing/plugins.hpp"
#include "routing/retry.hpp"
#include "routing/selector.hpp"
#include "routing/snapshot.hpp"
#include "routing/sticky.hpp"

namespace sluice::routing {
namespace {

std::uint64_t seed_or_random(std::uint64_t seed) {
  if (seed != 0) return seed;
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

std::string_view header(const RequestView& req, std::string_view name) {
  return req.header ? req.header(name) : std::string_view{};
}

// The hashing policy's key for this request, hashed; nullopt when the request has none.
std::optional<std::uint64_t> hash_key(const ServiceEntry& svc, const RequestView& req) {
  std::string_view key;
  switch (svc.hash.on) {
    case config::HashOn::client_address: key = req.client_address; break;
    case config::HashOn::header: key = header(req, svc.hash.name); break;
    case config::HashOn::cookie: key = cookie_value(header(req, "cookie"), svc.hash.name); break;
  }
  if (key.empty()) return std::nullopt;
  return hash64(key);
}

void no_endpoint_reason(const ServiceEntry& svc, const Snapshot& snap, std::string& out) {
  out = "no healthy endpoint for service " + svc.id;
  if (svc.endpoints.empty()) {
    out += svc.policy.lb_type == config::LbType::locality
               ? " in the local cluster " + snap.local_cluster + " (policy Locality)"
               : " in the clusters its traffic policy selects";
    if (!svc.unused_clusters.empty()) {
      out += "; the policy does not use its endpoints in";
      for (const auto& c : svc.unused_clusters) out += " " + c;
    }
  }
}

// The cluster to steer a retry away from: the last one when it was a remote gateway or its tier is
// failing (spilling traffic because too few of its endpoints are healthy).
int avoid_cluster(const ServiceEntry& svc, const ServiceView& view, const AttemptState& attempt) {
  if (attempt.attempt == 0 || attempt.last_cluster == 0) return -1;
  for (std::size_t i = 0; i < svc.clusters.size(); ++i) {
    const ClusterEntry& c = svc.clusters[i];
    if (c.key_hash != attempt.last_cluster) continue;
    const bool failing = c.tier < view.tiers.size() && view.tiers[c.tier].load.health < 100.0;
    return attempt.last_was_remote || !c.local || failing ? static_cast<int>(i) : -1;
  }
  return -1;
}

}  // namespace

Picker::Picker(const Table& table, std::uint64_t seed)
    : reader_(table), state_(std::make_unique<BalancerState>(seed_or_random(seed))) {}

Picker::~Picker() = default;

PickResult Picker::pick(const RequestView& req, AttemptState& attempt, Clock::time_point now) {
  PickResult r;
  pick_into(req, attempt, r, now);
  return r;
}

void Picker::pick_into(const RequestView& req, AttemptState& attempt, PickResult& out,
                       Clock::time_point now) {
  out.status = PickStatus::no_route;
  out.service_id = {};
  out.cluster = {};
  out.route = nullptr;
  out.service = nullptr;
  out.endpoint = nullptr;
  out.remote = false;
  out.tier = 0;
  out.retry = false;
  out.set_cookie.clear();
  out.reason.clear();
  if (out.lb_policy) out.lb_policy.reset();

  const std::shared_ptr<const Snapshot>& current = reader_.current_ptr();
  const Snapshot& snap = *current;
  if (!state_->current(snap)) state_->reset(current);
  if (out.snapshot != state_->snapshot()) out.snapshot = state_->snapshot();

  const auto& views = state_->views();
  const ServicePrefetch view_hint{reinterpret_cast<const char*>(views.data()), sizeof(ServiceView), views.size(),
                                  sizeof(ServiceView)};
  const RouteEntry* route = match_route(snap, req.listener, req.host, req.target, view_hint);
  if (!route) {
    out.reason = "no route for host '";
    out.reason.append(req.host).append("' path '").append(path_of(req.target)).append("'");
    return;
  }
  out.route = route;
  out.status = PickStatus::no_endpoint;
  out.service_id = route->service_id;  // also for the "no endpoint" answer's access log
  if (!route->service) {
    out.reason = "route names unknown service " + route->service_id;
    return;
  }
  const ServiceEntry& svc = *route->service;
  out.service = &svc;
  const Ticks now_ticks = to_ticks(now);
  ServiceView& view = state_->view(svc, now_ticks);

  SelectInput in;
  if (svc.load_balancer == config::LoadBalancer::hashing) in.hash_key = hash_key(svc, req);
  if (svc.session_sticky.enabled) {
    in.sticky_token = parse_token(cookie_value(header(req, "cookie"), svc.session_sticky.cookie));
  }
  in.tried = attempt.tried_tokens.data();
  in.tried_count = attempt.tried_tokens.size();
  in.avoid_cluster = avoid_cluster(svc, view, attempt);
  in.now = now_ticks;

  const Selection sel = select_endpoint(svc, view, in, state_->rng());
  if (sel.endpoint < 0) {
    if (sel.overloaded && view.has_candidates) {
      out.status = PickStatus::overloaded;
      out.reason = "every endpoint of service " + svc.id + " is at its pending-request limit";
    } else {
      no_endpoint_reason(svc, snap, out.reason);
    }
    return;
  }

  const EndpointEntry& ep = svc.endpoints[static_cast<std::size_t>(sel.endpoint)];
  const ClusterEntry& cluster = svc.clusters[ep.cluster];
  // Busy from idle: the stall clock starts now, not at its last response (which may be long ago).
  if (ep.state->active.fetch_add(1, std::memory_order_relaxed) == 0) record_progress(*ep.state, now_ticks);
  out.retry = attempt.next == RetryKind::budgeted;
  if (attempt.attempt > 0) [[unlikely]] {
    if (out.retry) svc.state->active_retries.fetch_add(1, std::memory_order_relaxed);
    if (attempt.next == RetryKind::local) svc.state->local_retries_total.fetch_add(1, std::memory_order_relaxed);
    svc.state->retries_total.fetch_add(1, std::memory_order_relaxed);
  }
  attempt.next = RetryKind::none;

  out.status = PickStatus::ok;
  out.endpoint = &ep;
  out.address.assign(ep.address);
  out.port = ep.port;
  upstream_target(*route, cluster.path_prefix, req.target, out.upstream_target);
  if (route->host_rewrite.empty()) out.host_header.assign(req.host);
  else out.host_header.assign(route->host_rewrite);
  out.cluster = cluster.key;
  out.remote = !cluster.local;
  out.tier = cluster.tier;
  if (view.report_outcomes) [[unlikely]] {
    out.lb_policy = view.policy;
    out.picked_at = now;
  }
  if (svc.session_sticky.enabled && !sel.sticky_hit) format_sticky_cookie(svc.session_sticky, ep.token, out.set_cookie);

  attempt.tried_tokens.push_back(ep.token);
  attempt.last_cluster = cluster.key_hash;
  attempt.last_was_remote = !cluster.local;
  ++attempt.attempt;
}

void Picker::finish(const PickResult& picked, Outcome outcome, Clock::time_point now) {
  if (picked.status != PickStatus::ok || !picked.endpoint || !picked.service) return;
  const EndpointEntry& ep = *picked.endpoint;
  const ServiceEntry& svc = *picked.service;
  ep.state->active.fetch_sub(1, std::memory_order_relaxed);
  if (picked.retry) svc.state->active_retries.fetch_sub(1, std::memory_order_relaxed);
  record_outcome(svc, ep, outcome, to_ticks(now));
  if (picked.lb_policy && outcome != Outcome::local_abort) [[unlikely]] {
    const ClusterEntry& cluster = svc.clusters[ep.cluster];
    const LbEndpoint view{ep.address, ep.port, cluster.key, cluster.local, static_cast<double>(ep.weight),
                          ep.state->active.load(std::memory_order_relaxed), ep.token};
    picked.lb_policy->finished(view, outcome == Outcome::success,
                               std::chrono::duration_cast<std::chrono::nanoseconds>(now - picked.picked_at));
  }
}

bool Picker::may_retry(const PickResult& picked, Outcome outcome, std::string_view method, bool replayable,
                       AttemptState& attempt, Clock::time_point now) const {
  if (picked.status != PickStatus::ok || !picked.service) return false;
  if (!picked.endpoint) return false;
  return retry_allowed(*picked.service, *picked.endpoint, outcome, method, replayable, attempt, to_ticks(now));
}

void Picker::responding(const PickResult& picked, Clock::time_point now) const {
  if (picked.status == PickStatus::ok && picked.endpoint) record_progress(*picked.endpoint->state, to_ticks(now));
}

}  // namespace sluice::routing
