// The out-of-line parts of the load-balancing plugin interface (plugins.hpp): what a tier's candidates
// are in the snapshot, and the by-value adapter for simple policies.
#include <vector>

#include "routing/balancers.hpp"
#include "routing/plugins.hpp"
#include "routing/snapshot.hpp"

namespace sluice::routing {

bool LbTier::excluded(std::size_t i) const { return exclusion_->excludes(candidates_[i]); }

std::uint64_t LbTier::token(std::size_t i) const { return service_->endpoints[candidates_[i].endpoint].token; }

LbEndpoint LbTier::describe(std::size_t i) const {
  const LbCandidate& c = candidates_[i];
  const EndpointEntry& ep = service_->endpoints[c.endpoint];
  const ClusterEntry& cluster = service_->clusters[ep.cluster];
  return LbEndpoint{ep.address, ep.port, cluster.key, cluster.local, c.weight, c.active(), ep.token};
}

int SimpleLoadBalancingPolicy::pick(const LbRequest& request, LbTier& tier) {
  // The allowed candidates by value; the worker's buffers are reused, so a warm pick allocates nothing.
  thread_local std::vector<LbEndpoint> endpoints;
  thread_local std::vector<std::uint32_t> index;
  endpoints.clear();
  index.clear();
  for (std::size_t k = 0; k < tier.size(); ++k) {
    if (!tier.allowed(k)) continue;
    endpoints.push_back(tier.describe(k));
    index.push_back(static_cast<std::uint32_t>(k));
  }
  if (endpoints.empty()) return -1;
  const int i = choose(request, std::span<const LbEndpoint>(endpoints));
  return i >= 0 && static_cast<std::size_t>(i) < endpoints.size() ? static_cast<int>(index[static_cast<std::size_t>(i)]) : -1;
}

}  // namespace sluice::routing
