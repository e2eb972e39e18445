// A worker's view of one service at an instant: per tier, the endpoints it may pick with their effective
// weights, and the tier's share of the traffic. Cached per worker (BalancerState) and recomputed only
// when the service's health epoch moves or a time-based change is due (ejection end, slow-start step).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "routing/clock.hpp"
#include "routing/plugins.hpp"
#include "routing/tiers.hpp"

namespace sluice::routing {

struct ServiceEntry;

// The candidate layout is the plugin interface's (plugins.hpp), so a policy reads the view's own array.
using Candidate = LbCandidate;

// Inline up to this many, so that a pick on a cold service does not chase one more pointer.
constexpr std::size_t kInlineCandidates = 16;

// Fields a pick reads come before the inline candidate array, so that they share the first lines.
struct TierView {
  double total_weight = 0;
  bool equal_weights = true;          // all candidates weigh the same (least work uses plain P2C)
  std::uint32_t cursor = 0;           // the policy's number (round robin: the candidate it takes next)
  TierLoad load;
  // The tier's healthy endpoints, or all of them in panic.
  boost::container::small_vector<Candidate, kInlineCandidates> candidates;
  std::vector<double> cumulative;     // prefix sums of candidate weights (weighted random)
  std::unique_ptr<LbTierState> state; // the policy's state (Hashing: its Maglev table), reset on recompute
  TierHealth health;
};

struct ServiceView {
  std::uint64_t epoch = 0;
  Ticks valid_until = kNever;  // recompute at or after this time; kNever: no timed change pending
  bool built = false;
  bool has_candidates = false;
  bool report_outcomes = false;  // a registered plugin: picks carry the policy so finish() can tell it
  // The service's load-balancing policy: a built-in's shared instance, or this worker's instance of a
  // plugin. Made on the first computation; kept while the snapshot lasts.
  std::shared_ptr<LoadBalancingPolicy> policy;
  boost::container::small_vector<TierView, 1> tiers;  // one inline: most services have one tier
  std::vector<std::uint32_t> fallback;  // terminating endpoints, used only when no tier has candidates

  // Whether the view must be recomputed at `now` for the service's current epoch.
  bool stale(std::uint64_t current_epoch, Ticks now) const {
    return !built || current_epoch != epoch || (valid_until != kNever && now >= valid_until);
  }
};

// (Re)computes a worker's cached `view` of `svc` at `now`. Keeps round-robin balances of endpoints that
// stay candidates (so a health change does not restart the rotation). Ends ejections whose backstop time
// is up and makes the service's policy (a plugin's factory runs) on first use: the worker's path only.
void compute_view(const ServiceEntry& svc, Ticks now, ServiceView& view);

// The same view without side effects (no ejection ended, no policy made): admin output, the failover
// monitor, /explain.
void inspect_view(const ServiceEntry& svc, Ticks now, ServiceView& view);

}  // namespace sluice::routing
