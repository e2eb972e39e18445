// Endpoint health as routing sees it at one instant: passive outlier ejection (decided at finish() time,
// lifted lazily when its time is up), the active health-check verdict, and the slow-start ramp.
// Lock-free: atomics and compare-and-swap only.
#pragma once

#include "routing/clock.hpp"
#include "routing/outcome.hpp"

namespace sluice::routing {

struct ServiceEntry;
struct EndpointEntry;

// Slow start: a returning endpoint's weight starts at this share and grows linearly to full over the
// window (Envoy slow_start_config: min_weight_percent 10, aggression 1.0 = linear).
inline constexpr double kSlowStartMinFactor = 0.1;

struct EndpointHealth {
  bool healthy = true;       // not ejected, not failing active checks, not terminating
  bool ejected = false;
  double ramp = 1.0;         // slow-start weight factor in [kSlowStartMinFactor, 1]
  Ticks next_change = kNever;  // when this verdict may change on its own (ejection end, ramp step); kNever: no
};

// Evaluates `ep` at `now`. An ejection whose time is up is lifted here (one CAS; the winner starts the
// endpoint's slow-start ramp at the ejection's end and bumps the service epoch). Any thread.
EndpointHealth evaluate(const ServiceEntry& svc, const EndpointEntry& ep, Ticks now);

// Slow-start factor of a ramp that began at `start` (kNever: none) for a window; 1 when over.
double ramp_factor(Ticks start, Ticks window, Ticks now);

// Records an attempt's outcome for outlier detection: a success resets the consecutive-failure count;
// `consecutive_failures` endpoint failures in a row eject the endpoint for
// min(base_ejection_time * ejection count, max_ejection_time), unless max_ejected endpoints of the
// service are already ejected. Returns true when this call ejected the endpoint. Any thread.
bool record_outcome(const ServiceEntry& svc, const EndpointEntry& ep, Outcome outcome, Ticks now);

// Number of the service's endpoints ejected at `now`.
std::uint32_t ejected_count(const ServiceEntry& svc, Ticks now);

}  // namespace sluice::routing
