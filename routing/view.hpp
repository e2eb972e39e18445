// A worker's view of one service at an instant: per tier, the endpoints it may pick with their effective
// weights, and the tier's share of the traffic. Cached per worker (BalancerState) and recomputed only
// when the service's health epoch moves or a time-based change is due (ejection end, slow-start step).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "routing/clock.hpp"
#include "routing/tiers.hpp"

namespace sluice::routing {

struct ServiceEntry;
struct EndpointState;
class MaglevTable;
class LoadBalancingPolicy;

struct Candidate {
  std::uint32_t endpoint = 0;  // index in ServiceEntry::endpoints
  std::uint32_t cluster = 0;   // its index in ServiceEntry::clusters (to prefetch the entry on a pick)
  double weight = 0;           // effective weight: endpoint weight * cluster share * slow-start factor
  double current = 0;          // smooth weighted round robin running balance (nginx current_weight)
  EndpointState* state = nullptr;  // the endpoint's state (its entry's), read without touching the entry
};

// Inline up to this many, so that a pick on a cold service does not chase one more pointer.
constexpr std::size_t kInlineCandidates = 16;

struct TierView {
  // The tier's healthy endpoints, or all of them in panic.
  boost::container::small_vector<Candidate, kInlineCandidates> candidates;
  std::vector<double> cumulative;     // prefix sums of candidate weights (weighted random)
  double total_weight = 0;
  bool equal_weights = true;          // all candidates weigh the same (least work uses plain P2C)
  std::uint32_t next = 0;             // equal weights: the candidate round robin takes next
  TierLoad load;
  TierHealth health;
  std::shared_ptr<MaglevTable> maglev;  // built on first hashing pick
};

struct ServiceView {
  std::uint64_t epoch = 0;
  Ticks valid_until = kNever;  // recompute at or after this time; kNever: no timed change pending
  bool built = false;
  boost::container::small_vector<TierView, 1> tiers;  // one inline: most services have one tier
  std::vector<std::uint32_t> fallback;  // terminating endpoints, used only when no tier has candidates
  bool has_candidates = false;
  // This worker's instance of the service's load-balancing plugin; null: the built-in policy.
  std::shared_ptr<LoadBalancingPolicy> plugin;

  // Whether the view must be recomputed at `now` for the service's current epoch.
  bool stale(std::uint64_t current_epoch, Ticks now) const {
    return !built || current_epoch != epoch || (valid_until != kNever && now >= valid_until);
  }
};

// (Re)computes `view` for `svc` at `now`. Keeps round-robin balances of endpoints that stay candidates
// (so a health change does not restart the rotation). Lifts expired ejections as a side effect.
void compute_view(const ServiceEntry& svc, Ticks now, ServiceView& view);

}  // namespace sluice::routing
