#include "routing/balancers.hpp"
#include "routing/health.hpp"
#include "routing/plugins.hpp"
#include "routing/snapshot.hpp"

namespace sluice::routing {

bool Exclusion::excludes(const LbCandidate& c) const {
  const EndpointEntry& ep = service->endpoints[c.endpoint];
  if (avoid_cluster >= 0 && ep.cluster == static_cast<std::uint32_t>(avoid_cluster)) return true;
  for (std::size_t i = 0; i < tried_count; ++i) {
    if (tried[i] == ep.token) return true;
  }
  if (avoid_unwell) {
    const EndpointState& s = *ep.state;
    if (stalled(s, now)) return true;
    // On a retry, an endpoint that just failed (below its ejection threshold) is a poor second choice.
    if (tried_count > 0 && (s.consecutive_gateway.load(std::memory_order_relaxed) > 0 ||
                            s.consecutive_local.load(std::memory_order_relaxed) > 0)) {
      return true;
    }
  }
  return max_pending > 0 && c.active() >= max_pending;
}

std::shared_ptr<LoadBalancingPolicy> builtin_policy(config::LoadBalancer kind) {
  switch (kind) {
    case config::LoadBalancer::round_robin: return round_robin_policy();
    case config::LoadBalancer::random: return random_policy();
    case config::LoadBalancer::least_work: return least_work_policy();
    case config::LoadBalancer::hashing: return hashing_policy();
  }
  return round_robin_policy();
}

}  // namespace sluice::routing
