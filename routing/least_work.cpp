#include "routing/balancers.hpp"
#include "routing/rng.hpp"
#include "routing/snapshot.hpp"
#include "routing/view.hpp"

namespace sluice::routing {
namespace {

double load_of(const Candidate& c, const ServiceEntry& svc) {
  const auto active = svc.endpoints[c.endpoint].state->active.load(std::memory_order_relaxed);
  return static_cast<double>(active + 1) / c.weight;
}

}  // namespace

int pick_least_work(const TierView& tier, const ServiceEntry& svc, Rng& rng, const Exclusion* ex) {
  const auto& cands = tier.candidates;
  if (cands.empty()) return -1;
  if (!ex) {
    if (cands.size() == 1) return 0;
    const int a = pick_random(tier, rng, nullptr);
    int b = pick_random(tier, rng, nullptr);
    if (b == a) b = (a + 1 + static_cast<int>(rng.below(static_cast<std::uint32_t>(cands.size() - 1)))) %
                    static_cast<int>(cands.size());
    return load_of(cands[static_cast<std::size_t>(b)], svc) < load_of(cands[static_cast<std::size_t>(a)], svc)
               ? b
               : a;
  }
  int best = -1;
  double best_load = 0;
  for (std::size_t k = 0; k < cands.size(); ++k) {
    if (ex->excludes(cands[k])) continue;
    const double l = load_of(cands[k], svc);
    if (best < 0 || l < best_load) {
      best = static_cast<int>(k);
      best_load = l;
    }
  }
  return best;
}

}  // namespace sluice::routing
