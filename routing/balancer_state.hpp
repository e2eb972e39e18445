// One worker's balancer state for one snapshot: a lazily built ServiceView per service (round-robin
// balances, Maglev tables, tier loads) and the worker's random source. Rebuilt when the snapshot's
// generation changes. Not thread-safe: one worker.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "routing/rng.hpp"
#include "routing/snapshot.hpp"
#include "routing/view.hpp"

namespace sluice::routing {

class BalancerState {
 public:
  explicit BalancerState(std::uint64_t seed) : rng_(seed) {}

  // Starts over for `snap` (held through a worker-local handle so that copying it into results touches
  // only this worker's reference count).
  void reset(const std::shared_ptr<const Snapshot>& snap) {
    auto holder = std::make_shared<std::shared_ptr<const Snapshot>>(snap);
    local_ = std::shared_ptr<const Snapshot>(holder, holder->get());
    generation_ = snap->generation;
    views_.clear();
    views_.resize(snap->services.size());
  }

  // The cached views by service index, for the route lookup to start loading the request's one (with
  // many services it is often cold) before the route is read.
  const HugeVector<ServiceView>& views() const { return views_; }

  bool current(const Snapshot& snap) const { return local_ && generation_ == snap.generation; }
  const std::shared_ptr<const Snapshot>& snapshot() const { return local_; }

  // The up-to-date view of `svc` at `now`, recomputed when its health epoch moved or a timed change is due.
  ServiceView& view(const ServiceEntry& svc, Ticks now) {
    ServiceView& v = views_[svc.index];
    const bool fresh = !v.built;
    if (v.stale(svc.state->epoch.load(std::memory_order_acquire), now)) {
      compute_view(svc, now, v);
      if (fresh) stagger(v);
    }
    return v;
  }

  Rng& rng() { return rng_; }

 private:
  // Workers start their round robins at different places, so that a rebuild does not send every
  // worker's next request to the same first endpoint.
  void stagger(ServiceView& v) {
    for (auto& tier : v.tiers) {
      if (tier.candidates.size() < 2) continue;
      tier.cursor = rng_.below(static_cast<std::uint32_t>(tier.candidates.size()));
      for (auto& c : tier.candidates) c.balance = rng_.uniform() * c.weight;
    }
  }

  Rng rng_;
  std::uint64_t generation_ = 0;
  std::shared_ptr<const Snapshot> local_;
  HugeVector<ServiceView> views_;  // by service index, built on first use; huge pages (read at random)
};

}  // namespace sluice::routing
