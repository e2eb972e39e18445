#include <algorithm>

#include "routing/balancers.hpp"
#include "routing/plugins.hpp"

namespace sluice::routing {

// Weighted random over the allowed candidates (shared with Hashing, which falls back to it without a key).
int pick_weighted_random(LbTier& tier) {
  const std::size_t n = tier.size();
  Rng& rng = tier.random();
  if (!tier.restricted()) {
    const auto sums = tier.cumulative();
    const double r = rng.uniform() * tier.total_weight();
    const auto k = static_cast<std::size_t>(std::upper_bound(sums.begin(), sums.end(), r) - sums.begin());
    return static_cast<int>(std::min(k, n - 1));
  }
  double total = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (tier.allowed(k)) total += tier[k].weight;
  }
  if (total <= 0) return -1;
  double r = rng.uniform() * total;
  int last = -1;
  for (std::size_t k = 0; k < n; ++k) {
    if (!tier.allowed(k)) continue;
    last = static_cast<int>(k);
    if (r < tier[k].weight) return last;
    r -= tier[k].weight;
  }
  return last;  // floating-point rounding at the very end
}

namespace {

class Random final : public LoadBalancingPolicy {
 public:
  int pick(const LbRequest&, LbTier& tier) override { return pick_weighted_random(tier); }
};

}  // namespace

std::shared_ptr<LoadBalancingPolicy> random_policy() {
  static const auto policy = std::make_shared<Random>();
  return policy;
}

}  // namespace sluice::routing
