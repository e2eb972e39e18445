// The built-in load-balancing policies (LoadBalancingPolicy, plugins.hpp) and the exclusion rules a
// retry applies to a tier's candidates. Each policy is one stateless instance shared by every worker:
// what it remembers (round-robin balances, the Maglev table) lives in the worker's view of the tier.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "config/config.hpp"
#include "routing/plugins.hpp"

namespace sluice::routing {

struct ServiceEntry;

// What a pick must avoid: endpoints this request already tried (by token), a cluster to steer away from,
// endpoints that look unwell (stalled, or failing without being ejected yet), and endpoints at their
// pending-request limit.
struct Exclusion {
  const ServiceEntry* service = nullptr;
  const std::uint64_t* tried = nullptr;
  std::size_t tried_count = 0;
  int avoid_cluster = -1;            // index in ServiceEntry::clusters; -1: none
  std::int64_t max_pending = 0;      // > 0: skip endpoints with this many requests in flight
  bool avoid_unwell = false;         // skip stalled endpoints, and on a retry failing ones
  std::int64_t now = 0;              // Ticks, for the stall check

  bool excludes(const LbCandidate& c) const;
};

// nginx smooth weighted round robin: every candidate's balance grows by its weight, the largest is taken
// and lowered by the total. Weights 5,1,1 give a a b a c a a. Equal weights: plain rotation (the same
// sequence), O(1).
std::shared_ptr<LoadBalancingPolicy> round_robin_policy();

// Weighted random (binary search over the prefix sums; linear when something is excluded).
std::shared_ptr<LoadBalancingPolicy> random_policy();
int pick_weighted_random(LbTier& tier);  // the same pick, for Hashing without a key

// Least work. Equal weights: power of two choices (two distinct candidates at random, the one with fewer
// requests in flight). Unequal weights (Envoy least_request): smooth weighted round robin over
// weight / (active + 1). With exclusions and equal weights: the least busy allowed candidate.
std::shared_ptr<LoadBalancingPolicy> least_work_policy();

// Consistent hashing (Maglev) on the request's hash key: the key's slot in the tier's lookup table, built
// on first use from the candidates' tokens and weights; excluded candidates are skipped by probing the
// following slots. No key (header or cookie absent): weighted random, like Envoy without a hash.
std::shared_ptr<LoadBalancingPolicy> hashing_policy();

// One step of nginx's smooth weighted round robin over the allowed candidates, with `weight(c)` the
// weight of candidate c for this step: each balance grows by its weight, the largest is taken and lowered
// by the total. Returns the index taken, or -1 when none is allowed.
template <class Weight>
int smooth_weighted_pick(LbTier& tier, Weight weight) {
  int best = -1;
  double total = 0;
  for (std::size_t k = 0; k < tier.size(); ++k) {
    if (!tier.allowed(k)) continue;
    LbCandidate& c = tier[k];
    const double w = weight(c);
    c.balance += w;
    total += w;
    if (best < 0 || c.balance > tier[static_cast<std::size_t>(best)].balance) best = static_cast<int>(k);
  }
  if (best >= 0) tier[static_cast<std::size_t>(best)].balance -= total;
  return best;
}

// The built-in policy of `kind`.
std::shared_ptr<LoadBalancingPolicy> builtin_policy(config::LoadBalancer kind);

}  // namespace sluice::routing
