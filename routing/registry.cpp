#include "routing/registry.hpp"

#include "routing/hash.hpp"

namespace sluice::routing {

void EndpointRegistry::begin_build() {
  std::lock_guard lock(mutex_);
  ++build_;
  cursor_ = kNoSlot;
}

std::shared_ptr<ServiceState> EndpointRegistry::acquire_service(const std::string& id, bool* existed) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = services_.try_emplace(id);
  if (inserted) it->second.state = std::allocate_shared<ServiceState>(PoolAllocator<ServiceState>(service_pool_));
  it->second.seen_build = build_;
  if (existed) *existed = !inserted;
  return it->second.state;
}

std::uint32_t EndpointRegistry::find_slot(std::string_view identity, std::uint64_t token) const {
  if (index_.empty()) return kNoSlot;
  const std::size_t mask = index_.size() - 1;
  for (std::size_t i = mix64(token) & mask;; i = (i + 1) & mask) {
    const std::uint32_t entry = index_[i];
    if (entry == 0) return kNoSlot;
    const EndpointSlot& slot = endpoints_[entry - 1];
    if (slot.token == token && slot.identity == identity) return entry - 1;
  }
}

void EndpointRegistry::reindex(std::size_t capacity) {
  index_.assign(capacity, 0);
  const std::size_t mask = capacity - 1;
  for (std::size_t k = 0; k < endpoints_.size(); ++k) {
    std::size_t i = mix64(endpoints_[k].token) & mask;
    while (index_[i] != 0) i = (i + 1) & mask;
    index_[i] = static_cast<std::uint32_t>(k + 1);
  }
}

std::shared_ptr<EndpointState> EndpointRegistry::acquire_endpoint(
    const std::string& identity, const std::shared_ptr<ServiceState>& service, bool ramp,
    Clock::time_point now) {
  return acquire_endpoint(identity, hash64(identity), service, ramp, now);
}

std::shared_ptr<EndpointState> EndpointRegistry::acquire_endpoint(
    std::string_view identity, std::uint64_t token, const std::shared_ptr<ServiceState>& service,
    bool ramp, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  // A rebuild acquires endpoints in about the order they were first inserted: try the slot after the
  // previous one before the index (a sequential walk instead of a random probe per endpoint).
  std::uint32_t k = kNoSlot;
  const std::uint32_t next = cursor_ + 1;  // wraps to 0 after kNoSlot
  if (next < endpoints_.size() && endpoints_[next].token == token && endpoints_[next].identity == identity) {
    k = next;
  } else {
    k = find_slot(identity, token);
  }
  const bool inserted = k == kNoSlot;
  if (inserted) {
    // Keep the index at most half full: linear probing stays short.
    if (2 * (endpoints_.size() + 1) > index_.size()) {
      std::size_t capacity = index_.empty() ? kMinIndex : index_.size();
      while (2 * (endpoints_.size() + 1) > capacity) capacity *= 2;
      EndpointSlot& fresh = endpoints_.emplace_back();
      fresh.identity.assign(identity);
      fresh.token = token;
      reindex(capacity);
    } else {
      EndpointSlot& fresh = endpoints_.emplace_back();
      fresh.identity.assign(identity);
      fresh.token = token;
      const std::size_t mask = index_.size() - 1;
      std::size_t i = mix64(token) & mask;
      while (index_[i] != 0) i = (i + 1) & mask;
      index_[i] = static_cast<std::uint32_t>(endpoints_.size());
    }
    k = static_cast<std::uint32_t>(endpoints_.size() - 1);
  }
  EndpointSlot& slot = endpoints_[k];
  if (inserted || slot.state->service != service) {
    // New, or the service was dropped and re-created: fresh state bound to the live service state.
    slot.state = std::allocate_shared<EndpointState>(PoolAllocator<EndpointState>(endpoint_pool_), service,
                                                  to_ticks(now));
    if (ramp) slot.state->ramp_start.store(to_ticks(now), std::memory_order_relaxed);
  } else if (!slot.present && ramp) {
    // Coming back (failback): ramp up instead of taking the full share at once. Counters and any
    // ejection are kept.
    slot.state->ramp_start.store(to_ticks(now), std::memory_order_relaxed);
  }
  slot.seen_build = build_;
  slot.present = true;
  cursor_ = k;
  return slot.state;
}

void EndpointRegistry::end_build(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const Ticks now_ticks = to_ticks(now);
  // One sequential pass; dropped slots are squeezed out in place (order kept) and the index rebuilt.
  std::size_t kept = 0;
  for (std::size_t k = 0; k < endpoints_.size(); ++k) {
    EndpointSlot& slot = endpoints_[k];
    bool drop = false;
    if (slot.seen_build != build_) {
      if (slot.present) {
        slot.present = false;
        slot.absent_since = now;
      }
      const bool ejected = slot.state->ejected_until.load(std::memory_order_relaxed) > now_ticks;
      drop = !ejected && now - slot.absent_since >= kRetention && slot.state.use_count() == 1;
    }
    if (drop) continue;
    if (kept != k) endpoints_[kept] = std::move(slot);
    ++kept;
  }
  if (kept != endpoints_.size()) {
    endpoints_.resize(kept);
    reindex(index_.size());
    cursor_ = kNoSlot;
  }
  for (auto it = services_.begin(); it != services_.end();) {
    // A service's state goes once no endpoint state and no snapshot refers to it.
    if (it->second.seen_build != build_ && it->second.state.use_count() == 1) {
      it = services_.erase(it);
    } else {
      ++it;
    }
  }
}

std::shared_ptr<EndpointState> EndpointRegistry::find(std::string_view identity) const {
  std::lock_guard lock(mutex_);
  const std::uint32_t k = find_slot(identity, hash64(identity));
  return k == kNoSlot ? nullptr : endpoints_[k].state;
}

void EndpointRegistry::set_check_state(EndpointState& s, HealthCheckState next, Clock::time_point now) {
  const HealthCheckState prev = s.health_check.exchange(next, std::memory_order_acq_rel);
  if (prev == next) return;
  if (prev == HealthCheckState::unhealthy && next == HealthCheckState::healthy) {
    s.ramp_start.store(to_ticks(now), std::memory_order_relaxed);
  }
  s.service->bump_epoch();
}

bool EndpointRegistry::set_health_check_result(std::string_view identity, bool healthy,
                                               Clock::time_point now) {
  auto state = find(identity);
  if (!state) return false;
  set_check_state(*state, healthy ? HealthCheckState::healthy : HealthCheckState::unhealthy, now);
  return true;
}

bool EndpointRegistry::record_health_check(std::string_view identity, bool passed,
                                           std::uint32_t healthy_threshold,
                                           std::uint32_t unhealthy_threshold, Clock::time_point now) {
  auto state = find(identity);
  if (!state) return false;
  EndpointState& s = *state;
  if (passed) {
    s.check_failures.store(0, std::memory_order_relaxed);
    const auto ok = s.check_successes.fetch_add(1, std::memory_order_relaxed) + 1;
    // The first verdict of a never-checked endpoint needs one probe only (it was assumed healthy).
    if (ok >= healthy_threshold ||
        s.health_check.load(std::memory_order_relaxed) == HealthCheckState::unknown) {
      set_check_state(s, HealthCheckState::healthy, now);
    }
  } else {
    s.check_successes.store(0, std::memory_order_relaxed);
    const auto bad = s.check_failures.fetch_add(1, std::memory_order_relaxed) + 1;
    if (bad >= unhealthy_threshold) set_check_state(s, HealthCheckState::unhealthy, now);
  }
  return true;
}

std::size_t EndpointRegistry::endpoint_count() const {
  std::lock_guard lock(mutex_);
  return endpoints_.size();
}

std::size_t EndpointRegistry::service_count() const {
  std::lock_guard lock(mutex_);
  return services_.size();
}

}  // namespace sluice::routing
