#include "routing/health.hpp"

#include <algorithm>

#include "routing/snapshot.hpp"

namespace sluice::routing {
namespace {

// A slow-start ramp is re-evaluated this many times over its window (a cached view refreshes at each step).
constexpr Ticks kRampSteps = 20;

}  // namespace

double ramp_factor(Ticks start, Ticks window, Ticks now) {
  if (start == kNever || window <= 0 || now >= start + window) return 1.0;
  if (now <= start) return kSlowStartMinFactor;
  const double f = static_cast<double>(now - start) / static_cast<double>(window);
  return std::max(kSlowStartMinFactor, f);
}

EndpointHealth evaluate(const ServiceEntry& svc, const EndpointEntry& ep, Ticks now) {
  EndpointHealth h;
  EndpointState& s = *ep.state;
  Ticks until = s.ejected_until.load(std::memory_order_acquire);
  if (until != kNever && until <= now) {
    // Time is up: lift the ejection. Only the CAS winner starts the ramp and tells the workers.
    if (s.ejected_until.compare_exchange_strong(until, kNever, std::memory_order_acq_rel)) {
      s.ramp_start.store(until, std::memory_order_relaxed);
      s.consecutive_failures.store(0, std::memory_order_relaxed);
      s.service->bump_epoch();
    }
    until = kNever;
  }
  if (until != kNever) {
    h.healthy = false;
    h.ejected = true;
    h.next_change = until;
  }
  if (s.health_check.load(std::memory_order_acquire) == HealthCheckState::unhealthy) h.healthy = false;
  if (ep.terminating) h.healthy = false;

  const Ticks start = s.ramp_start.load(std::memory_order_relaxed);
  h.ramp = ramp_factor(start, svc.slow_start_window, now);
  if (h.ramp < 1.0) {
    const Ticks step = std::max<Ticks>(1, svc.slow_start_window / kRampSteps);
    const Ticks next = std::min(now + step, start + svc.slow_start_window);
    if (h.next_change == kNever || next < h.next_change) h.next_change = next;
  }
  return h;
}

std::uint32_t ejected_count(const ServiceEntry& svc, Ticks now) {
  std::uint32_t n = 0;
  for (const auto& ep : svc.endpoints) {
    if (ep.state->ejected_until.load(std::memory_order_relaxed) > now) ++n;
  }
  return n;
}

bool record_outcome(const ServiceEntry& svc, const EndpointEntry& ep, Outcome outcome, Ticks now) {
  EndpointState& s = *ep.state;
  if (outcome == Outcome::local_abort) return false;
  s.requests_total.fetch_add(1, std::memory_order_relaxed);
  if (!is_endpoint_failure(outcome)) {
    // Written only when it changes: a store dirties the line that every worker's picks read.
    if (s.consecutive_failures.load(std::memory_order_relaxed) != 0) {
      s.consecutive_failures.store(0, std::memory_order_relaxed);
    }
    return false;
  }
  s.failures_total.fetch_add(1, std::memory_order_relaxed);
  const auto failures = s.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  if (!svc.outlier.enabled || failures < svc.outlier.consecutive_failures) return false;
  if (s.ejected_until.load(std::memory_order_relaxed) > now) return false;  // already out

  // One ejection decision per service at a time; a worker that finds another deciding skips: the next
  // failure of this endpoint will try again.
  ServiceState& svc_state = *s.service;
  if (svc_state.ejecting.exchange(true, std::memory_order_acquire)) return false;
  bool ejected = false;
  if (ejected_count(svc, now) >= svc.max_ejected) {
    svc_state.ejections_refused.fetch_add(1, std::memory_order_relaxed);
  } else {
    Ticks expected = s.ejected_until.load(std::memory_order_relaxed);
    const auto count = s.ejection_count.load(std::memory_order_relaxed) + 1;
    const Ticks base = to_ticks(std::chrono::duration_cast<Clock::duration>(svc.outlier.base_ejection_time));
    const Ticks cap = to_ticks(std::chrono::duration_cast<Clock::duration>(svc.outlier.max_ejection_time));
    const Ticks duration = std::min(base * static_cast<Ticks>(count), std::max(base, cap));
    if (expected <= now &&
        s.ejected_until.compare_exchange_strong(expected, now + duration, std::memory_order_acq_rel)) {
      s.ejection_count.store(count, std::memory_order_relaxed);
      s.consecutive_failures.store(0, std::memory_order_relaxed);
      svc_state.ejections_total.fetch_add(1, std::memory_order_relaxed);
      svc_state.bump_epoch();
      ejected = true;
    }
  }
  svc_state.ejecting.store(false, std::memory_order_release);
  return ejected;
}

}  // namespace sluice::routing
