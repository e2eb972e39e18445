#include "routing/view.hpp"

#include <algorithm>
#include <cmath>

#include "routing/balancers.hpp"
#include "routing/health.hpp"
#include "routing/plugins.hpp"
#include "routing/snapshot.hpp"

namespace sluice::routing {
namespace {

struct Scratch {
  std::vector<EndpointHealth> health;
  std::vector<double> old_balance;
};

}  // namespace

namespace {

// Whether endpoint `i` is a candidate of tier view `tv`: healthy, or in panic reachable (dead endpoints
// only as the last resort, when nothing is reachable).
bool admitted(const EndpointEntry& ep, const EndpointHealth& h, const TierLoad& load) {
  if (ep.terminating) return false;
  if (h.healthy) return true;
  return load.panic && (!h.dead || load.last_resort);
}

void build_view(const ServiceEntry& svc, Ticks now, ServiceView& view, bool for_worker);

}  // namespace

void compute_view(const ServiceEntry& svc, Ticks now, ServiceView& view) { build_view(svc, now, view, true); }

void inspect_view(const ServiceEntry& svc, Ticks now, ServiceView& view) { build_view(svc, now, view, false); }

namespace {

void build_view(const ServiceEntry& svc, Ticks now, ServiceView& view, bool for_worker) {
  // The epoch is read before the endpoints: a change racing with this computation bumps it again and
  // the next pick recomputes.
  view.epoch = svc.state->epoch.load(std::memory_order_acquire);
  view.valid_until = kNever;

  thread_local Scratch scratch;
  auto& health = scratch.health;
  health.resize(svc.endpoints.size());
  auto& old_balance = scratch.old_balance;
  old_balance.assign(svc.endpoints.size(), 0.0);
  if (view.built) {
    for (const auto& tier : view.tiers) {
      for (const auto& c : tier.candidates) old_balance[c.endpoint] = c.balance;
    }
  }

  for (const auto& ep : svc.endpoints) {
    if (for_worker) lift_expired(ep, now);
    health[ep.index] = evaluate(svc, ep, now);
    const Ticks next = health[ep.index].next_change;
    if (next != kNever && (view.valid_until == kNever || next < view.valid_until)) view.valid_until = next;
  }

  const std::size_t n_tiers = svc.tier_count;
  view.tiers.resize(n_tiers);
  std::vector<TierHealth> tier_health(n_tiers);
  std::vector<TierLoad> tier_load(n_tiers);
  view.fallback.clear();
  for (std::size_t t = 0; t < n_tiers; ++t) {
    TierHealth& th = tier_health[t];
    for (std::uint32_t ci : svc.tier_clusters(static_cast<std::uint32_t>(t))) {
      const ClusterEntry& c = svc.clusters[ci];
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) {
        if (svc.endpoints[i].terminating) {
          view.fallback.push_back(i);
          continue;
        }
        ++th.total;
        if (!health[i].dead) ++th.reachable;
        if (health[i].healthy) {
          th.healthy += health[i].ramp;
          ++th.healthy_count;
        }
      }
    }
  }
  compute_tier_loads(tier_health.data(), n_tiers, svc.policy.overprovisioning, svc.policy.panic_threshold,
                     tier_load.data());

  view.has_candidates = false;
  for (std::size_t t = 0; t < n_tiers; ++t) {
    TierView& tv = view.tiers[t];
    tv.health = tier_health[t];
    tv.load = tier_load[t];
    tv.candidates.clear();
    tv.state.reset();
    for (std::uint32_t ci : svc.tier_clusters(static_cast<std::uint32_t>(t))) {
      const ClusterEntry& c = svc.clusters[ci];
      // ActiveActive cluster weights: the cluster's share is split among its usable endpoints by their
      // weights. Each endpoint's part is scaled by its slow-start factor, so a whole cluster coming back
      // ramps up with its endpoints.
      double weight_sum = 0;
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) {
        if (admitted(svc.endpoints[i], health[i], tv.load)) weight_sum += svc.endpoints[i].weight;
      }
      if (weight_sum <= 0) continue;
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) {
        const EndpointEntry& ep = svc.endpoints[i];
        if (!admitted(ep, health[i], tv.load)) continue;
        double w = static_cast<double>(ep.weight) * health[i].ramp;
        if (c.weight > 0) w = c.weight * w / weight_sum;
        if (w <= 0) continue;
        tv.candidates.push_back(Candidate{i, ci, w, old_balance[i], ep.state.get()});
      }
    }
    tv.cumulative.resize(tv.candidates.size());
    double sum = 0;
    for (std::size_t k = 0; k < tv.candidates.size(); ++k) {
      sum += tv.candidates[k].weight;
      tv.cumulative[k] = sum;
    }
    tv.total_weight = sum;
    tv.equal_weights = true;
    for (const auto& c : tv.candidates) {
      if (std::abs(c.weight - tv.candidates.front().weight) > 1e-9 * c.weight) tv.equal_weights = false;
    }
    if (!tv.candidates.empty()) view.has_candidates = true;
  }
  // Made once per worker and service: it keeps its state across health changes. A plugin's factory that
  // makes nothing leaves the service with its configured built-in. An inspection makes none.
  if (!view.policy && for_worker) {
    if (svc.lb_plugin) view.policy = svc.lb_plugin->make(svc.id);
    view.report_outcomes = view.policy && svc.lb_plugin && !svc.lb_plugin->builtin;
    if (!view.policy) view.policy = builtin_policy(svc.load_balancer);
  }
  view.built = true;
}

}  // namespace

}  // namespace sluice::routing
