// Routing's time. Routing never reads the clock itself: every decision takes `now` as a parameter so tests
// drive a fake clock. Times are stored in atomics as Clock ticks (ns). Public header (endpoint_state.hpp
// needs it).
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

namespace sluice::routing {

using Clock = std::chrono::steady_clock;
using Ticks = Clock::rep;

// "No such time": not ejected, no slow-start ramp running.
inline constexpr Ticks kNever = std::numeric_limits<Ticks>::min();

inline Ticks to_ticks(Clock::time_point t) { return t.time_since_epoch().count(); }
inline Ticks to_ticks(Clock::duration d) { return d.count(); }

}  // namespace sluice::routing
