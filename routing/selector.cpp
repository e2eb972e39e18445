#include "routing/selector.hpp"

#include "routing/balancers.hpp"
#include "routing/hash.hpp"
#include "routing/health.hpp"
#include "routing/plugins.hpp"
#include "routing/rng.hpp"
#include "routing/snapshot.hpp"
#include "routing/view.hpp"

namespace sluice::routing {
namespace {

// The service's policy over tier t's candidates: the built-ins and plugins alike.
int pick_in_tier(const ServiceEntry& svc, ServiceView& view, std::size_t t, const SelectInput& in, Rng& rng,
                 const Exclusion* ex) {
  TierView& tier = view.tiers[t];
  if (tier.candidates.empty()) return -1;
  LbTier lb({tier.candidates.data(), tier.candidates.size()}, tier.cumulative, tier.total_weight, tier.equal_weights, tier.cursor, tier.state, rng,
            svc, ex);
  const LbRequest request{svc.id, static_cast<unsigned>(t), in.hash_key, in.tried_count > 0};
  const int k = view.policy->pick(request, lb);
  if (k < 0 || static_cast<std::size_t>(k) >= tier.candidates.size()) return -1;
  // The built-ins never return an excluded candidate; a plugin that does must not break the core's rules.
  return ex && ex->excludes(tier.candidates[static_cast<std::size_t>(k)]) ? -1 : k;
}

// The tier this request draws by the tiers' loads (percent). Hashing draws with the key, so a client
// stays in its tier while the loads hold.
std::size_t draw_tier(const ServiceView& view, const SelectInput& in, Rng& rng) {
  // One tier (Locality, ActiveActive): it has the candidates (the caller checked), nothing to draw.
  if (view.tiers.size() == 1) return 0;
  const double r = in.hash_key ? static_cast<double>(mix64(*in.hash_key ^ 0x7f4a7c15u) % 100000) / 1000.0
                               : rng.uniform() * 100.0;
  double acc = 0;
  std::size_t first_with_candidates = view.tiers.size();
  for (std::size_t t = 0; t < view.tiers.size(); ++t) {
    const TierView& tier = view.tiers[t];
    if (tier.candidates.empty()) continue;
    if (first_with_candidates == view.tiers.size()) first_with_candidates = t;
    acc += tier.load.load;
    if (tier.load.load > 0 && r < acc) return t;
  }
  // Rounding at the top end, or loads only on tiers without candidates: the last loaded, else the first.
  for (std::size_t t = view.tiers.size(); t-- > 0;) {
    if (!view.tiers[t].candidates.empty() && view.tiers[t].load.load > 0) return t;
  }
  return first_with_candidates;
}

bool under_limit(const ServiceEntry& svc, std::uint32_t endpoint) {
  const auto max = svc.retry.max_pending_per_endpoint;
  return max == 0 || svc.endpoints[endpoint].state->active.load(std::memory_order_relaxed) < max;
}

// The sticky endpoint when it is a candidate of a tier that takes traffic, not tried, under its limit.
int sticky_endpoint(const ServiceEntry& svc, const ServiceView& view, std::uint64_t token) {
  const EndpointEntry* ep = svc.find_token(token);
  if (!ep || !under_limit(svc, ep->index)) return -1;
  for (const auto& tier : view.tiers) {
    if (tier.load.load <= 0) continue;
    for (const auto& c : tier.candidates) {
      if (c.endpoint == ep->index) return static_cast<int>(ep->index);
    }
  }
  return -1;
}

Selection select_fallback(const ServiceEntry& svc, const ServiceView& view, const SelectInput& in, Rng& rng) {
  // Only terminating endpoints are left: they still serve, so use them rather than fail.
  Selection s;
  if (view.fallback.empty()) return s;
  const std::size_t start = rng.below(static_cast<std::uint32_t>(view.fallback.size()));
  for (int pass = 0; pass < 2 && s.endpoint < 0; ++pass) {
    for (std::size_t k = 0; k < view.fallback.size(); ++k) {
      const std::uint32_t i = view.fallback[(start + k) % view.fallback.size()];
      bool tried = false;
      for (std::size_t j = 0; j < in.tried_count && pass == 0; ++j) tried |= in.tried[j] == svc.endpoints[i].token;
      if (!tried && under_limit(svc, i)) {
        s.endpoint = static_cast<int>(i);
        break;
      }
    }
  }
  s.overloaded = s.endpoint < 0;
  return s;
}

}  // namespace

Selection select_endpoint(const ServiceEntry& svc, ServiceView& view, const SelectInput& in, Rng& rng) {
  if (!view.has_candidates) return select_fallback(svc, view, in, rng);
  Selection s;
  const bool retry = in.tried_count > 0;

  if (in.sticky_token && !retry) {
    s.endpoint = sticky_endpoint(svc, view, *in.sticky_token);
    if (s.endpoint >= 0) {
      s.sticky_hit = true;
      return s;
    }
  }

  const std::size_t first = draw_tier(view, in, rng);
  if (!retry) {
    // Fast path: no exclusions; the limit is checked on the chosen endpoint only.
    const int k = pick_in_tier(svc, view, first, in, rng, nullptr);
    if (k >= 0) {
      const Candidate& c = view.tiers[first].candidates[static_cast<std::size_t>(k)];
      // The caller reads these next; on a cold service each is a cache miss: start them together.
      __builtin_prefetch(&svc.endpoints[c.endpoint]);
      __builtin_prefetch(&svc.clusters[c.cluster]);
      const auto max = svc.retry.max_pending_per_endpoint;
      if ((max == 0 || c.state->active.load(std::memory_order_relaxed) < max) && !stalled(*c.state, in.now)) {
        s.endpoint = static_cast<int>(c.endpoint);
        return s;
      }
    }
  }

  // Relax step by step: first avoid the tried endpoints, the failing cluster and unwell endpoints
  // (stalled; on a retry, failing), then only the tried endpoints and the cluster, then only the tried
  // endpoints, then nothing but the pending limit (HAProxy: fall back to the previous server).
  Exclusion ex;
  ex.service = &svc;
  ex.max_pending = svc.retry.max_pending_per_endpoint;
  ex.now = in.now;
  for (int pass = 0; pass < 4; ++pass) {
    if (pass == 2 && in.avoid_cluster < 0) continue;  // same as pass 1
    if (pass == 3 && !retry) continue;                // same as pass 2
    ex.avoid_unwell = pass == 0;
    ex.avoid_cluster = pass <= 1 ? in.avoid_cluster : -1;
    ex.tried = pass <= 2 ? in.tried : nullptr;
    ex.tried_count = pass <= 2 ? in.tried_count : 0;
    for (std::size_t n = 0; n < view.tiers.size(); ++n) {
      const std::size_t t = (first + n) % view.tiers.size();
      const TierView& tier = view.tiers[t];
      const int k = pick_in_tier(svc, view, t, in, rng, &ex);
      if (k >= 0) {
        s.endpoint = static_cast<int>(tier.candidates[static_cast<std::size_t>(k)].endpoint);
        return s;
      }
    }
  }
  s.overloaded = true;
  return s;
}

}  // namespace sluice::routing
