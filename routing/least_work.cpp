#include "routing/balancers.hpp"
#include "routing/rng.hpp"
#include "routing/snapshot.hpp"
#include "routing/view.hpp"

namespace sluice::routing {
namespace {

std::int64_t active_of(const Candidate& c, const ServiceEntry& svc) {
  return svc.endpoints[c.endpoint].state->active.load(std::memory_order_relaxed);
}

// Unequal weights (Envoy's least_request does the same): smooth weighted round robin over the dynamic
// weights weight / (active + 1), so idle endpoints share by weight and busy ones are passed over.
int pick_dynamic_weights(TierView& tier, const ServiceEntry& svc, const Exclusion* ex) {
  int best = -1;
  double total = 0;
  auto& cands = tier.candidates;
  for (std::size_t k = 0; k < cands.size(); ++k) {
    Candidate& c = cands[k];
    if (ex && ex->excludes(c)) continue;
    const double w = c.weight / static_cast<double>(active_of(c, svc) + 1);
    c.current += w;
    total += w;
    if (best < 0 || c.current > cands[static_cast<std::size_t>(best)].current) best = static_cast<int>(k);
  }
  if (best >= 0) cands[static_cast<std::size_t>(best)].current -= total;
  return best;
}

}  // namespace

int pick_least_work(TierView& tier, const ServiceEntry& svc, Rng& rng, const Exclusion* ex) {
  const auto& cands = tier.candidates;
  if (cands.empty()) return -1;
  if (!tier.equal_weights) return pick_dynamic_weights(tier, svc, ex);
  const auto n = static_cast<std::uint32_t>(cands.size());
  if (!ex) {
    // Power of two choices: two distinct candidates at random, the one with fewer requests in flight.
    if (n == 1) return 0;
    const std::uint32_t a = rng.below(n);
    const std::uint32_t b = (a + 1 + rng.below(n - 1)) % n;
    return active_of(cands[b], svc) < active_of(cands[a], svc) ? static_cast<int>(b) : static_cast<int>(a);
  }
  // With exclusions (retries, limits): the least busy allowed candidate, from a random start for ties.
  int best = -1;
  std::int64_t best_active = 0;
  const std::uint32_t start = rng.below(n);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t k = (start + i) % n;
    if (ex->excludes(cands[k])) continue;
    const auto active = active_of(cands[k], svc);
    if (best < 0 || active < best_active) {
      best = static_cast<int>(k);
      best_active = active;
    }
  }
  return best;
}

}  // namespace sluice::routing
