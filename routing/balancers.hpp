// Load-balancing policies over one tier's candidates (view.hpp). One worker's state, no locks.
// Each returns an index into tier.candidates, or -1 when there is none or all are excluded.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sluice::routing {

struct ServiceEntry;
struct TierView;
struct Candidate;
class Rng;

// What a pick must avoid: endpoints this request already tried (by token), a cluster to steer away from,
// and endpoints at their pending-request limit.
struct Exclusion {
  const ServiceEntry* service = nullptr;
  const std::uint64_t* tried = nullptr;
  std::size_t tried_count = 0;
  int avoid_cluster = -1;            // index in ServiceEntry::clusters; -1: none
  std::int64_t max_pending = 0;      // > 0: skip endpoints with this many requests in flight

  bool excludes(const Candidate& c) const;
};

// nginx smooth weighted round robin: every candidate's current weight grows by its weight, the largest
// is taken and lowered by the total. Weights 5,1,1 give a a b a c a a (never three in a row of a
// 5:1:1 when others are due).
int pick_round_robin(TierView& tier, const Exclusion* ex);

// Weighted random (binary search over prefix sums; linear when something is excluded).
int pick_random(const TierView& tier, Rng& rng, const Exclusion* ex);

// Least work. Equal weights: power of two choices (two distinct candidates at random, the one with fewer
// requests in flight). Unequal weights (Envoy least_request): smooth weighted round robin over
// weight / (active + 1). With exclusions and equal weights: the least busy allowed candidate.
int pick_least_work(TierView& tier, const ServiceEntry& svc, Rng& rng, const Exclusion* ex);

// Consistent hashing (Maglev): the key's slot in the tier's lookup table, built on first use from the
// candidates' tokens and weights; excluded candidates are skipped by probing the following slots.
int pick_hashed(TierView& tier, const ServiceEntry& svc, std::uint64_t key, const Exclusion* ex);

}  // namespace sluice::routing
