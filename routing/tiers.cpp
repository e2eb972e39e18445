#include "routing/tiers.hpp"

#include <algorithm>

namespace sluice::routing {
namespace {

// Healthy amounts are sums of slow-start factors; this absorbs floating-point dust around "all healthy".
constexpr double kEpsilon = 1e-9;

double tier_health(const TierHealth& t, double overprovisioning) {
  if (t.total == 0 || t.healthy <= kEpsilon) return 0.0;
  if (overprovisioning <= 0) return 100.0;  // all-or-nothing
  return std::min(100.0, 100.0 * overprovisioning * t.healthy / static_cast<double>(t.total));
}

}  // namespace

void compute_tier_loads(const TierHealth* tiers, std::size_t n, double overprovisioning,
                        double panic_threshold, TierLoad* out) {
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = TierLoad{};
    out[i].health = tier_health(tiers[i], overprovisioning);
    sum += out[i].health;
  }
  if (sum <= kEpsilon) {
    // Nothing healthy anywhere: the first tier with a reachable endpoint takes everything, in panic; with
    // none reachable, the first tier with endpoints, over all of them.
    for (int pass = 0; pass < 2; ++pass) {
      for (std::size_t i = 0; i < n; ++i) {
        if ((pass == 0 ? tiers[i].reachable : tiers[i].total) == 0) continue;
        out[i].load = 100.0;
        out[i].panic = true;
        out[i].last_resort = pass == 1;
        return;
      }
    }
    return;
  }
  if (sum < 100.0 - kEpsilon) {
    // Not enough health in all tiers together: spread in proportion to health, and panic where a tier's
    // healthy share of its reachable endpoints is below the threshold (Envoy disregards panic while
    // total health is 100).
    for (std::size_t i = 0; i < n; ++i) {
      out[i].load = out[i].health * 100.0 / sum;
      if (tiers[i].reachable > 0 && out[i].load > 0) {
        const double share = static_cast<double>(tiers[i].healthy_count) / static_cast<double>(tiers[i].reachable);
        out[i].panic = share < panic_threshold;
      }
    }
    return;
  }
  double left = 100.0;
  for (std::size_t i = 0; i < n; ++i) {
    out[i].load = std::min(left, out[i].health);
    left -= out[i].load;
  }
}

ClusterHealth cluster_health(std::size_t healthy, std::size_t total, double overprovisioning) {
  if (total == 0 || healthy == 0) return ClusterHealth::down;
  const double share = static_cast<double>(healthy) / static_cast<double>(total);
  if (share >= 1.0 - kEpsilon || (overprovisioning > 0 && share * overprovisioning >= 1.0 - kEpsilon)) {
    return ClusterHealth::healthy;
  }
  return ClusterHealth::degraded;
}

const char* to_string(ClusterHealth h) {
  switch (h) {
    case ClusterHealth::healthy: return "healthy";
    case ClusterHealth::degraded: return "degraded";
    case ClusterHealth::down: return "down";
  }
  return "unknown";
}

}  // namespace sluice::routing
