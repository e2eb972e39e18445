// Endpoint health as routing sees it at one instant: passive outlier ejection (decided at finish() time),
// its end (a successful probe, or the backstop timer), the active health-check verdict, the slow-start
// ramp, and stall avoidance. Lock-free: atomics and compare-and-swap only. The rules, with worked
// numbers, are in routing/README.md ("Endpoint health").
#pragma once

#include "routing/clock.hpp"
#include "routing/endpoint_state.hpp"
#include "routing/outcome.hpp"

namespace sluice::routing {

struct ServiceEntry;
struct EndpointEntry;

// Slow start: a returning endpoint's weight starts at this share and grows linearly to full over the
// window (Envoy slow_start_config: min_weight_percent 10, aggression 1.0 = linear).
inline constexpr double kSlowStartMinFactor = 0.1;

// An endpoint with requests in flight that has shown no sign of life for this long (no response, see
// EndpointState::progress) is stalled: picks avoid it while another endpoint is usable. It catches an
// endpoint that accepts and never answers, or never completes a connect, long before a timeout does.
inline constexpr Ticks kStallAfter = 1'000'000'000;  // 1 s

// Flap damping: an endpoint ejected again within this time of its return has its probe delays doubled
// (up to kMaxDamping times); each such period of stable service takes one doubling off.
inline constexpr Ticks kStablePeriod = 10'000'000'000;  // 10 s
inline constexpr std::uint32_t kMaxDamping = 2;

struct EndpointHealth {
  bool healthy = true;       // not ejected, not failing active checks, not terminating (ramping is healthy)
  bool ejected = false;
  bool dead = false;         // ejected for local-origin failures: not reachable, never used in panic
  EjectionReason reason = EjectionReason::none;
  double ramp = 1.0;         // slow-start weight factor in [kSlowStartMinFactor, 1]: a share, not health
  Ticks next_change = kNever;  // when this verdict may change on its own (ejection end, ramp step); kNever: no
};

// Evaluates `ep` at `now`. Reads only: an ejection whose backstop time is up reads as ended (ramping from
// its deadline) whether or not lift_expired() has run. Any thread.
EndpointHealth evaluate(const ServiceEntry& svc, const EndpointEntry& ep, Ticks now);

// Ends an ejection whose backstop time is up (one CAS; the winner starts the slow-start ramp at the
// deadline and bumps the service epoch). Returns true when this call ended it. Any thread.
bool lift_expired(const EndpointEntry& ep, Ticks now);

// Slow-start factor of a ramp that began at `start` (kNever: none) for a window; 1 when over.
double ramp_factor(Ticks start, Ticks window, Ticks now);

// Records an attempt's outcome for outlier detection (see config::OutlierDetection): a success resets
// the consecutive counts; consecutive_local_origin_failures local-origin failures eject at once (never
// capped); consecutive_gateway_failures gateway failures, or consecutive_failures 5xx, eject while the
// service's max ejection share allows, or when every endpoint of the endpoint's cluster is failing.
// Returns true when this call ejected the endpoint. Any thread.
bool record_outcome(const ServiceEntry& svc, const EndpointEntry& ep, Outcome outcome, Ticks now);

// A response head arrived from `ep`: a sign of life for stall detection. Any thread.
inline void record_progress(EndpointState& s, Ticks now) { s.progress.store(now, std::memory_order_relaxed); }

// Whether `s` is stalled at `now` (kStallAfter).
inline bool stalled(const EndpointState& s, Ticks now) {
  return s.active.load(std::memory_order_relaxed) > 0 && now - s.progress.load(std::memory_order_relaxed) > kStallAfter;
}

// --- probing ejected endpoints (the proxy's prober; routing has no sockets) ---

// What a probe of an ejected endpoint checks: that it accepts a connection (TLS handshake included)
// after a local-origin ejection; that it answers an HTTP request without a 5xx (the configured health
// check, 2xx, where there is one) after the others.
enum class ProbeKind { connect, http };

// Whether `ep` is ejected and its next probe is due at `now`.
bool probe_due(const EndpointEntry& ep, Ticks now);
ProbeKind probe_kind(const ServiceEntry& svc, const EndpointEntry& ep);

// Records a probe: a pass ends the ejection (slow start from `now`); a failure schedules the next probe
// with backoff (probe_interval doubling to max_probe_interval, both times 2^damping) and pushes the
// backstop back. `reachable` false (no connection) marks the endpoint dead. Returns true when the
// ejection ended. Any thread.
bool record_probe(const ServiceEntry& svc, const EndpointEntry& ep, bool passed, bool reachable, Ticks now);

// The delay before probe number `failures` + 1 of an endpoint with `damping`.
Ticks probe_delay(const ServiceEntry& svc, std::uint32_t damping, std::uint32_t failures);

const char* to_string(EjectionReason r);

// Number of the service's endpoints ejected at `now` (any reason).
std::uint32_t ejected_count(const ServiceEntry& svc, Ticks now);

}  // namespace sluice::routing
