#include <algorithm>

#include "routing/balancers.hpp"
#include "routing/rng.hpp"
#include "routing/view.hpp"

namespace sluice::routing {

int pick_random(const TierView& tier, Rng& rng, const Exclusion* ex) {
  const auto& cands = tier.candidates;
  if (cands.empty()) return -1;
  if (!ex) {
    const double r = rng.uniform() * tier.total_weight;
    const auto it = std::upper_bound(tier.cumulative.begin(), tier.cumulative.end(), r);
    const auto k = static_cast<int>(it - tier.cumulative.begin());
    return std::min(k, static_cast<int>(cands.size()) - 1);
  }
  double total = 0;
  for (const auto& c : cands) {
    if (!ex->excludes(c)) total += c.weight;
  }
  if (total <= 0) return -1;
  double r = rng.uniform() * total;
  int last = -1;
  for (std::size_t k = 0; k < cands.size(); ++k) {
    if (ex->excludes(cands[k])) continue;
    last = static_cast<int>(k);
    if (r < cands[k].weight) return last;
    r -= cands[k].weight;
  }
  return last;  // floating-point rounding at the very end
}

}  // namespace sluice::routing
