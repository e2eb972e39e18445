#include "routing/registry.hpp"

namespace sluice::routing {

void EndpointRegistry::begin_build() {
  std::lock_guard lock(mutex_);
  ++build_;
}

std::shared_ptr<ServiceState> EndpointRegistry::acquire_service(const std::string& id, bool* existed) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = services_.try_emplace(id);
  if (inserted) it->second.state = std::make_shared<ServiceState>();
  it->second.seen_build = build_;
  if (existed) *existed = !inserted;
  return it->second.state;
}

std::shared_ptr<EndpointState> EndpointRegistry::acquire_endpoint(
    const std::string& identity, const std::shared_ptr<ServiceState>& service, bool ramp,
    Clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto [it, inserted] = endpoints_.try_emplace(identity);
  EndpointSlot& slot = it->second;
  if (inserted || slot.state->service != service) {
    // New, or the service was dropped and re-created: fresh state bound to the live service state.
    slot.state = std::make_shared<EndpointState>(service);
    if (ramp) slot.state->ramp_start.store(to_ticks(now), std::memory_order_relaxed);
  } else if (!slot.present && ramp) {
    // Coming back (failback): ramp up instead of taking the full share at once. Counters and any
    // ejection are kept.
    slot.state->ramp_start.store(to_ticks(now), std::memory_order_relaxed);
  }
  slot.seen_build = build_;
  slot.present = true;
  return slot.state;
}

void EndpointRegistry::end_build(Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const Ticks now_ticks = to_ticks(now);
  for (auto it = endpoints_.begin(); it != endpoints_.end();) {
    EndpointSlot& slot = it->second;
    if (slot.seen_build != build_) {
      if (slot.present) {
        slot.present = false;
        slot.absent_since = now;
      }
      const bool ejected = slot.state->ejected_until.load(std::memory_order_relaxed) > now_ticks;
      if (!ejected && now - slot.absent_since >= kRetention && slot.state.use_count() == 1) {
        it = endpoints_.erase(it);
        continue;
      }
    }
    ++it;
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
  auto it = endpoints_.find(std::string(identity));
  return it == endpoints_.end() ? nullptr : it->second.state;
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
