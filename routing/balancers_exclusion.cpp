#include "routing/balancers.hpp"
#include "routing/snapshot.hpp"
#include "routing/view.hpp"

namespace sluice::routing {

bool Exclusion::excludes(const Candidate& c) const {
  const EndpointEntry& ep = service->endpoints[c.endpoint];
  if (avoid_cluster >= 0 && ep.cluster == static_cast<std::uint32_t>(avoid_cluster)) return true;
  for (std::size_t i = 0; i < tried_count; ++i) {
    if (tried[i] == ep.token) return true;
  }
  return max_pending > 0 && ep.state->active.load(std::memory_order_relaxed) >= max_pending;
}

}  // namespace sluice::routing
