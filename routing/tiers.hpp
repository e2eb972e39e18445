// FailOver tiers: how much of a service's traffic each priority tier takes, from its health.
//
// Envoy's priority load with the overprovisioning factor (default 1.4): a tier's health is
//   health = min(100, 100 * overprovisioning * healthy / total)
// where `healthy` counts each healthy endpoint by its slow-start factor (a recovering tier wins its
// traffic back gradually) and `total` counts dead endpoints too (they are lost capacity).
// Tiers take traffic in order: tier 0 takes min(100, health0), tier 1 what is left up to health1, ...
// When the tiers' healths add up to less than 100 the loads are scaled up to sum to 100, and a tier whose
// healthy share of its *reachable* endpoints is below the panic threshold then balances over all its
// reachable endpoints (panic): panic undoes opinions (5xx, failed checks), never sends traffic to an
// endpoint the proxy could not reach. When no tier has any health, the first tier with a reachable
// endpoint takes everything, in panic; when nothing is reachable, the first tier with endpoints (a last
// resort: something may have come back). Overprovisioning 0 is ErieCanal's all-or-nothing: a tier with
// any healthy endpoint takes all that is left. Worked numbers in routing/README.md.
#pragma once

#include <cstddef>

namespace sluice::routing {

struct TierHealth {
  double healthy = 0;        // healthy endpoints, each counted by its slow-start factor (0..1)
  std::size_t healthy_count = 0;  // healthy endpoints, ramping or not
  std::size_t total = 0;     // endpoints in the tier (not counting terminating ones)
  std::size_t reachable = 0; // of which not dead (not ejected for local-origin failures)
};

struct TierLoad {
  double load = 0;           // percent of the service's traffic, 0..100
  double health = 0;         // percent, after overprovisioning, 0..100
  bool panic = false;        // balance over all reachable endpoints of the tier, healthy or not
  bool last_resort = false;  // nothing reachable anywhere: balance over every endpoint of the tier
};

// Computes loads for `n` tiers. `overprovisioning` >= 0, `panic_threshold` in [0, 1].
void compute_tier_loads(const TierHealth* tiers, std::size_t n, double overprovisioning,
                        double panic_threshold, TierLoad* out);

enum class ClusterHealth { healthy, degraded, down };

// A cluster's state from its endpoints (`healthy` counts ramping endpoints in full: slow start is a
// share, not a health state): healthy while it would keep all its traffic (healthy share *
// overprovisioning >= 1, or every endpoint healthy), down when none is healthy, degraded between.
ClusterHealth cluster_health(std::size_t healthy, std::size_t total, double overprovisioning);

const char* to_string(ClusterHealth h);

}  // namespace sluice::routing
