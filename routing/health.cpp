#include "routing/health.hpp"

#include <algorithm>
#include <cmath>

#include "routing/snapshot.hpp"

namespace sluice::routing {
namespace {

// A slow-start ramp is re-evaluated this many times over its window (a cached view refreshes at each step).
constexpr Ticks kRampSteps = 20;

Ticks ticks_of(std::chrono::milliseconds d) { return to_ticks(std::chrono::duration_cast<Clock::duration>(d)); }

// Zeroes a counter only when it is not zero: a store dirties the line that every worker's picks read.
void clear(std::atomic<std::uint32_t>& counter) {
  if (counter.load(std::memory_order_relaxed) != 0) counter.store(0, std::memory_order_relaxed);
}

void clear_failure_counts(EndpointState& s) {
  clear(s.consecutive_failures);
  clear(s.consecutive_gateway);
  clear(s.consecutive_local);
}

bool failing(const EndpointState& s) {
  return s.consecutive_failures.load(std::memory_order_relaxed) > 0 ||
         s.consecutive_gateway.load(std::memory_order_relaxed) > 0 ||
         s.consecutive_local.load(std::memory_order_relaxed) > 0;
}

// The end of an ejection, by whichever way it came: slow start from `at`, counts cleared, epoch bumped.
void on_return(EndpointState& s, Ticks at, ReturnReason why) {
  s.ramp_start.store(at, std::memory_order_relaxed);
  s.returned_at.store(at, std::memory_order_relaxed);
  s.next_probe.store(kNever, std::memory_order_relaxed);
  s.probe_failures.store(0, std::memory_order_relaxed);
  s.ejection_reason.store(EjectionReason::none, std::memory_order_relaxed);
  clear_failure_counts(s);
  auto& stats = *s.service;
  (why == ReturnReason::probe ? stats.returns_probe : stats.returns_timer).fetch_add(1, std::memory_order_relaxed);
  stats.bump_epoch();
}

// Whether an ejection for an opinion (5xx, gateway failures) of `ep` is allowed: fewer than
// max_ejection_percent of the service's reachable endpoints are out for opinions (at least one may go),
// or every other endpoint of its cluster is failing too while another cluster has an endpoint in
// rotation (a cluster that is down goes as a whole, whatever the cap).
bool opinion_ejection_allowed(const ServiceEntry& svc, const EndpointEntry& ep, Ticks now) {
  std::uint32_t reachable = 0, out = 0;
  bool cluster_failing = true, elsewhere = false;
  for (const auto& e : svc.endpoints) {
    const EndpointState& s = *e.state;
    const bool ejected = s.ejected_until.load(std::memory_order_relaxed) > now;
    const bool dead = ejected && s.ejection_reason.load(std::memory_order_relaxed) == EjectionReason::local_origin;
    if (!dead) ++reachable;
    if (ejected && !dead) ++out;
    if (e.cluster == ep.cluster) {
      if (&e != &ep && !ejected && !failing(s)) cluster_failing = false;
    } else if (!ejected && !e.terminating) {
      elsewhere = true;
    }
  }
  const double share = std::max(0.0, svc.outlier.max_ejection_percent) / 100.0;
  const auto cap = std::max<std::uint32_t>(1, static_cast<std::uint32_t>(share * reachable + 1e-9));
  return out < cap || (cluster_failing && elsewhere);
}

// Ejects `ep` for `reason`. Returns true when this call did.
bool eject(const ServiceEntry& svc, const EndpointEntry& ep, EjectionReason reason, Ticks now) {
  EndpointState& s = *ep.state;
  ServiceState& stats = *s.service;
  if (s.ejected_until.load(std::memory_order_relaxed) > now) {
    // Already out (in panic it still takes traffic): learning that it is unreachable makes it dead.
    if (reason == EjectionReason::local_origin &&
        s.ejection_reason.exchange(reason, std::memory_order_relaxed) != reason) {
      stats.bump_epoch();
    }
    return false;
  }
  // One ejection decision per service at a time; a worker that finds another deciding skips: the next
  // failure of this endpoint will try again.
  if (stats.ejecting.exchange(true, std::memory_order_acquire)) return false;
  bool ejected = false;
  if (reason != EjectionReason::local_origin && !opinion_ejection_allowed(svc, ep, now)) {
    stats.ejections_refused.fetch_add(1, std::memory_order_relaxed);
  } else {
    // Flap damping: out again soon after its return doubles its probe delays; stable service undoes it.
    std::uint32_t damping = s.damping.load(std::memory_order_relaxed);
    const Ticks returned = s.returned_at.load(std::memory_order_relaxed);
    if (returned != kNever) {
      const Ticks stable = now - returned;
      if (stable < kStablePeriod) {
        damping = std::min(kMaxDamping, damping + 1);
      } else {
        const auto periods = static_cast<std::uint32_t>(std::min<Ticks>(stable / kStablePeriod, kMaxDamping));
        damping = damping > periods ? damping - periods : 0;
      }
    }
    const auto count = s.ejection_count.load(std::memory_order_relaxed) + 1;
    const Ticks base = ticks_of(svc.outlier.base_ejection_time);
    const Ticks backstop = std::min(base * static_cast<Ticks>(count), std::max(base, ticks_of(svc.outlier.max_ejection_time)));
    Ticks expected = s.ejected_until.load(std::memory_order_relaxed);
    if (expected <= now &&
        s.ejected_until.compare_exchange_strong(expected, now + backstop, std::memory_order_acq_rel)) {
      s.ejection_reason.store(reason, std::memory_order_relaxed);
      s.ejection_count.store(count, std::memory_order_relaxed);
      s.damping.store(damping, std::memory_order_relaxed);
      s.probe_failures.store(0, std::memory_order_relaxed);
      s.next_probe.store(now + probe_delay(svc, damping, 0), std::memory_order_relaxed);
      clear_failure_counts(s);
      stats.ejections_total.fetch_add(1, std::memory_order_relaxed);
      stats.ejections_by_reason[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
      stats.bump_epoch();
      ejected = true;
    }
  }
  stats.ejecting.store(false, std::memory_order_release);
  return ejected;
}

}  // namespace

double ramp_factor(Ticks start, Ticks window, Ticks now) {
  if (start == kNever || window <= 0 || now >= start + window) return 1.0;
  if (now <= start) return kSlowStartMinFactor;
  const double f = static_cast<double>(now - start) / static_cast<double>(window);
  return std::max(kSlowStartMinFactor, f);
}

EndpointHealth evaluate(const ServiceEntry& svc, const EndpointEntry& ep, Ticks now) {
  EndpointHealth h;
  const EndpointState& s = *ep.state;
  const Ticks until = s.ejected_until.load(std::memory_order_acquire);
  Ticks ramp_start = s.ramp_start.load(std::memory_order_relaxed);
  if (until > now) {
    h.healthy = false;
    h.ejected = true;
    h.reason = s.ejection_reason.load(std::memory_order_relaxed);
    h.dead = h.reason == EjectionReason::local_origin;
    h.next_change = until;
  } else if (until != kNever) {
    ramp_start = until;  // ended, not yet lifted: it ramps from its deadline, as lift_expired will record
  }
  if (s.health_check.load(std::memory_order_acquire) == HealthCheckState::unhealthy) h.healthy = false;
  if (ep.terminating) h.healthy = false;

  h.ramp = ramp_factor(ramp_start, svc.slow_start_window, now);
  if (h.ramp < 1.0) {
    const Ticks step = std::max<Ticks>(1, svc.slow_start_window / kRampSteps);
    const Ticks next = std::min(now + step, ramp_start + svc.slow_start_window);
    if (h.next_change == kNever || next < h.next_change) h.next_change = next;
  }
  return h;
}

bool lift_expired(const EndpointEntry& ep, Ticks now) {
  EndpointState& s = *ep.state;
  Ticks until = s.ejected_until.load(std::memory_order_acquire);
  if (until == kNever || until > now) return false;
  if (!s.ejected_until.compare_exchange_strong(until, kNever, std::memory_order_acq_rel)) return false;
  on_return(s, until, ReturnReason::timer);
  return true;
}

bool record_outcome(const ServiceEntry& svc, const EndpointEntry& ep, Outcome outcome, Ticks now) {
  EndpointState& s = *ep.state;
  if (outcome == Outcome::local_abort) return false;
  s.requests_total.fetch_add(1, std::memory_order_relaxed);
  if (outcome == Outcome::success) {
    s.progress.store(now, std::memory_order_relaxed);
    clear_failure_counts(s);
    return false;
  }
  if (outcome == Outcome::reset_reused) return false;  // the keep-alive race: neither proof nor blame
  s.failures_total.fetch_add(1, std::memory_order_relaxed);
  const auto& od = svc.outlier;
  if (is_local_origin(outcome)) {
    const auto n = s.consecutive_local.fetch_add(1, std::memory_order_relaxed) + 1;
    return od.enabled && n >= od.consecutive_local_origin_failures &&
           eject(svc, ep, EjectionReason::local_origin, now);
  }
  // It answered (or at least took the request): it is there, whatever it said.
  clear(s.consecutive_local);
  std::uint32_t gateway = 0, any_5xx = 0;
  if (outcome == Outcome::gateway_error || outcome == Outcome::timeout) {
    gateway = s.consecutive_gateway.fetch_add(1, std::memory_order_relaxed) + 1;
  } else {
    clear(s.consecutive_gateway);
  }
  if (outcome != Outcome::timeout) {
    s.progress.store(now, std::memory_order_relaxed);
    any_5xx = s.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  if (!od.enabled) return false;
  if (gateway >= od.consecutive_gateway_failures) return eject(svc, ep, EjectionReason::gateway_error, now);
  if (any_5xx >= od.consecutive_failures) return eject(svc, ep, EjectionReason::http_5xx, now);
  return false;
}

Ticks probe_delay(const ServiceEntry& svc, std::uint32_t damping, std::uint32_t failures) {
  const Ticks first = ticks_of(svc.outlier.probe_interval);
  const Ticks cap = ticks_of(svc.outlier.max_probe_interval) << std::min(damping, kMaxDamping);
  const auto doublings = std::min<std::uint32_t>(failures + damping, 20);
  return std::min(first << doublings, std::max(first, cap));
}

bool probe_due(const EndpointEntry& ep, Ticks now) {
  const EndpointState& s = *ep.state;
  if (s.ejected_until.load(std::memory_order_acquire) <= now) return false;
  const Ticks due = s.next_probe.load(std::memory_order_relaxed);
  return due != kNever && due <= now;
}

ProbeKind probe_kind(const ServiceEntry& svc, const EndpointEntry& ep) {
  if (svc.health_check.enabled) return ProbeKind::http;
  return ep.state->ejection_reason.load(std::memory_order_relaxed) == EjectionReason::local_origin ? ProbeKind::connect
                                                                                                   : ProbeKind::http;
}

bool record_probe(const ServiceEntry& svc, const EndpointEntry& ep, bool passed, bool reachable, Ticks now) {
  EndpointState& s = *ep.state;
  Ticks until = s.ejected_until.load(std::memory_order_acquire);
  if (until <= now) return false;  // already back (the backstop, or another probe)
  if (passed) {
    if (!s.ejected_until.compare_exchange_strong(until, kNever, std::memory_order_acq_rel)) return false;
    on_return(s, now, ReturnReason::probe);
    return true;
  }
  const auto failures = s.probe_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  const Ticks next = now + probe_delay(svc, s.damping.load(std::memory_order_relaxed), failures);
  s.next_probe.store(next, std::memory_order_relaxed);
  // While probes fail, the backstop must not bring it back blind.
  const Ticks backstop = next + ticks_of(svc.outlier.base_ejection_time);
  if (until < backstop) s.ejected_until.compare_exchange_strong(until, backstop, std::memory_order_acq_rel);
  if (!reachable && s.ejection_reason.exchange(EjectionReason::local_origin, std::memory_order_relaxed) !=
                        EjectionReason::local_origin) {
    s.service->bump_epoch();
  }
  return false;
}

std::uint32_t ejected_count(const ServiceEntry& svc, Ticks now) {
  std::uint32_t n = 0;
  for (const auto& ep : svc.endpoints) {
    if (ep.state->ejected_until.load(std::memory_order_relaxed) > now) ++n;
  }
  return n;
}

const char* to_string(EjectionReason r) {
  switch (r) {
    case EjectionReason::none: return "none";
    case EjectionReason::local_origin: return "local_origin";
    case EjectionReason::gateway_error: return "gateway_error";
    case EjectionReason::http_5xx: return "http_5xx";
  }
  return "unknown";
}

const char* to_string(Outcome o) {
  switch (o) {
    case Outcome::success: return "success";
    case Outcome::http_5xx: return "http_5xx";
    case Outcome::gateway_error: return "gateway_error";
    case Outcome::timeout: return "timeout";
    case Outcome::connect_failure: return "connect_failure";
    case Outcome::reset: return "reset";
    case Outcome::reset_reused: return "reset_reused";
    case Outcome::local_abort: return "local_abort";
  }
  return "unknown";
}

}  // namespace sluice::routing
