#include "routing/balancers.hpp"
#include "routing/view.hpp"

namespace sluice::routing {

int pick_round_robin(TierView& tier, const Exclusion* ex) {
  int best = -1;
  double total = 0;
  auto& cands = tier.candidates;
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
