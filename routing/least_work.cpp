#include "routing/balancers.hpp"
#include "routing/plugins.hpp"

namespace sluice::routing {
namespace {

class LeastWork final : public LoadBalancingPolicy {
 public:
  int pick(const LbRequest&, LbTier& tier) override {
    const auto n = static_cast<std::uint32_t>(tier.size());
    if (!tier.equal_weights()) return pick_dynamic_weights(tier);
    Rng& rng = tier.random();
    if (!tier.restricted()) {
      // Power of two choices: two distinct candidates at random, the one with fewer requests in flight.
      if (n == 1) return 0;
      const std::uint32_t a = rng.below(n);
      const std::uint32_t b = (a + 1 + rng.below(n - 1)) % n;
      return tier[b].active() < tier[a].active() ? static_cast<int>(b) : static_cast<int>(a);
    }
    // With exclusions (retries, limits): the least busy allowed candidate, from a random start for ties.
    int best = -1;
    std::int64_t best_active = 0;
    const std::uint32_t start = rng.below(n);
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint32_t k = (start + i) % n;
      if (!tier.allowed(k)) continue;
      const auto active = tier[k].active();
      if (best < 0 || active < best_active) {
        best = static_cast<int>(k);
        best_active = active;
      }
    }
    return best;
  }

 private:
  // Unequal weights (Envoy's least_request does the same): smooth weighted round robin over the dynamic
  // weights weight / (active + 1), so idle endpoints share by weight and busy ones are passed over.
  static int pick_dynamic_weights(LbTier& tier) {
    return smooth_weighted_pick(tier, [](const LbCandidate& c) { return c.weight / static_cast<double>(c.active() + 1); });
  }
};

}  // namespace

std::shared_ptr<LoadBalancingPolicy> least_work_policy() {
  static const auto policy = std::make_shared<LeastWork>();
  return policy;
}

}  // namespace sluice::routing
