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

// Aligned to a cache line: workers update these counters on every request; two services' (or
// endpoints') counters must not share a line.
struct alignas(64) ServiceState {
  // Bumped whenever one of the service's endpoints changes health (ejection, return, active check), so a
  // worker's cached view knows to recompute with one atomic load.
  // Every pick reads it, so nothing a pick writes lives in this line's neighbourhood: the service's
  // requests in flight are the sum of its endpoints' (ServiceEntry::active_requests), not a counter here.
  std::atomic<std::uint64_t> epoch{0};
  std::atomic<std::int64_t> active_retries{0};  // written only by retries
  // Held (try-only, never waited for) while one worker decides an ejection, so that two workers cannot
  // both eject past the service's max ejection share.
  std::atomic<bool> ejecting{false};
  std::atomic<std::uint64_t> ejections_total{0};
  std::atomic<std::uint64_t> ejections_refused{0};  // max ejection share reached
  std::atomic<std::uint64_t> retries_total{0};
  std::atomic<std::uint64_t> budget_exhausted{0};

  void bump_epoch() { epoch.fetch_add(1, std::memory_order_release); }
};

// What pick and finish touch comes first (one cache line); the owner pointer and check counters after.
struct alignas(64) EndpointState {
  explicit EndpointState(std::shared_ptr<ServiceState> owner) : service(std::move(owner)) {}

  std::atomic<std::int64_t> active{0};                  // requests in flight
  std::atomic<std::uint64_t> requests_total{0};
  std::atomic<std::uint64_t> failures_total{0};
  std::atomic<std::uint32_t> consecutive_failures{0};
  std::atomic<HealthCheckState> health_check{HealthCheckState::unknown};
  std::atomic<Ticks> ejected_until{kNever};             // > now: ejected
  std::atomic<Ticks> ramp_start{kNever};                // slow start began here; kNever: full weight
  std::atomic<std::uint32_t> ejection_count{0};         // times ejected; multiplies the ejection time
  std::atomic<std::uint32_t> check_successes{0};        // consecutive active-check results
  std::atomic<std::uint32_t> check_failures{0};

  const std::shared_ptr<ServiceState> service;
};

}  // namespace sluice::routing
