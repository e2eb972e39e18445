// Mutable per-endpoint and per-service state that outlives snapshots.
//
// The EndpointRegistry owns these objects, keyed by identity; every snapshot that contains the endpoint
// points at the same object, so a rebuild never resets a healthy endpoint's counters or forgives an
// ejected one. Workers update them with atomics only (relaxed where a counter is only advisory).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "routing/clock.hpp"

namespace sluice::routing {

enum class HealthCheckState : std::uint8_t { unknown, healthy, unhealthy };

// Why an endpoint is out of rotation. local_origin: the proxy could not reach it (it is dead; panic never
// brings it back); the others are opinions about a live endpoint's answers.
enum class EjectionReason : std::uint8_t { none, local_origin, gateway_error, http_5xx };
inline constexpr std::size_t kEjectionReasons = 4;

// How an ejection ended.
enum class ReturnReason : std::uint8_t { probe, timer };

// Aligned to a cache line: workers update these counters on every request; two services' (or
// endpoints') counters must not share a line.
struct alignas(64) ServiceState {
  // Bumped whenever one of the service's endpoints changes health (ejection, return, active check), so a
  // worker's cached view knows to recompute with one atomic load.
  // Every pick reads it, so nothing a pick writes lives in this line's neighbourhood: the service's
  // requests in flight are the sum of its endpoints' (ServiceEntry::active_requests), not a counter here.
  std::atomic<std::uint64_t> epoch{0};
  std::atomic<std::int64_t> active_retries{0};  // budgeted retries in flight (5xx, timeouts)
  // Held (try-only, never waited for) while one worker decides an ejection, so that two workers cannot
  // both eject past the service's max ejection share.
  std::atomic<bool> ejecting{false};
  std::atomic<std::uint64_t> ejections_total{0};
  std::atomic<std::uint64_t> ejections_by_reason[kEjectionReasons]{};  // by EjectionReason
  std::atomic<std::uint64_t> ejections_refused{0};  // max ejection share reached
  std::atomic<std::uint64_t> returns_probe{0};      // ejections ended by a successful probe
  std::atomic<std::uint64_t> returns_timer{0};      // ... by the backstop timer
  std::atomic<std::uint64_t> retries_total{0};
  std::atomic<std::uint64_t> local_retries_total{0};  // of which after a local-origin failure (no budget)
  std::atomic<std::uint64_t> budget_exhausted{0};     // retries refused by the retry budget

  void bump_epoch() { epoch.fetch_add(1, std::memory_order_release); }
};

// What pick and finish touch comes first (one cache line); probe and check state after.
struct alignas(64) EndpointState {
  explicit EndpointState(std::shared_ptr<ServiceState> owner, Ticks now = 0)
      : progress(now), service(std::move(owner)) {}

  std::atomic<std::int64_t> active{0};                  // requests in flight
  // Last sign of life while requests were in flight: a response, or the moment it went from idle to busy.
  // An endpoint with requests in flight and no sign of life for a while is stalled (picks avoid it).
  std::atomic<Ticks> progress{0};
  std::atomic<Ticks> ejected_until{kNever};             // > now: ejected (the backstop deadline)
  std::atomic<Ticks> ramp_start{kNever};                // slow start began here; kNever: full weight
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> failures_total{0};
  std::atomic<std::uint32_t> consecutive_failures{0};   // any 5xx
  std::atomic<std::uint32_t> consecutive_gateway{0};    // 502/503/504 and response timeouts
  std::atomic<std::uint32_t> consecutive_local{0};      // connect failures, resets before any response byte
  std::atomic<HealthCheckState> health_check{HealthCheckState::unknown};
  std::atomic<EjectionReason> ejection_reason{EjectionReason::none};

  // Ejection, probing and flap damping (control side and the rare ejecting worker).
  std::atomic<std::uint32_t> ejection_count{0};         // times ejected
  std::atomic<Ticks> next_probe{kNever};                // when the prober should try it next (ejected only)
  std::atomic<std::uint32_t> probe_failures{0};         // failed probes during this ejection
  std::atomic<std::uint32_t> damping{0};                // grows when it fails again soon after returning
  std::atomic<Ticks> returned_at{kNever};               // when the last ejection ended
  std::atomic<std::uint32_t> check_successes{0};        // consecutive active-check results
  std::atomic<std::uint32_t> check_failures{0};

  const std::shared_ptr<ServiceState> service;
};

}  // namespace sluice::routing
