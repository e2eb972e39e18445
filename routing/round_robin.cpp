#include "routing/balancers.hpp"
#include "routing/view.hpp"

namespace sluice::routing {

int pick_round_robin(TierView& tier, const Exclusion* ex) {
  auto& cands = tier.candidates;
  // Equal weights: smooth weighted round robin is plain rotation, so rotate without the O(n) pass.
  if (tier.equal_weights && !ex && !cands.empty()) {
    const std::uint32_t k = tier.next < cands.size() ? tier.next : 0;
    tier.next = k + 1 < cands.size() ? k + 1 : 0;
    return static_cast<int>(k);
  }
  int best = -1;
  double total = 0;
  for (std::size_t k = 0; k < cands.size(); ++k) {
    Candidate& c = cands[k];
    if (ex && ex->excludes(c)) continue;
    c.current += c.weight;
    total += c.weight;
    if (best < 0 || c.current > cands[static_cast<std::size_t>(best)].current) best = static_cast<int>(k);
  }
  if (best >= 0) cands[static_cast<std::size_t>(best)].current -= total;
  return best;
}

}  // namespace sluice::routing
