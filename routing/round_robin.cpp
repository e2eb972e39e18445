#include "routing/balancers.hpp"
#include "routing/plugins.hpp"

namespace sluice::routing {
namespace {

class RoundRobin final : public LoadBalancingPolicy {
 public:
  int pick(const LbRequest&, LbTier& tier) override {
    const std::size_t n = tier.size();
    // Equal weights: smooth weighted round robin is plain rotation, so rotate without the O(n) pass.
    if (tier.equal_weights() && !tier.restricted()) {
      std::uint32_t& next = tier.cursor();
      const std::uint32_t k = next < n ? next : 0;
      next = k + 1 < n ? k + 1 : 0;
      return static_cast<int>(k);
    }
    return smooth_weighted_pick(tier, [](const LbCandidate& c) { return c.weight; });
  }
};

}  // namespace

std::shared_ptr<LoadBalancingPolicy> round_robin_policy() {
  static const auto policy = std::make_shared<RoundRobin>();
  return policy;
}

}  // namespace sluice::routing
