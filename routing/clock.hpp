// Time and hashing helpers shared by routing. Routing never reads the clock itself: every decision takes
// `now` as a parameter so tests drive a fake clock. Times are stored in atomics as Clock ticks (ns).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string_view>

namespace sluice::routing {

using Clock = std::chrono::steady_clock;
using Ticks = Clock::rep;

// "No such time": not ejected, no slow-start ramp running.
inline constexpr Ticks kNever = std::numeric_limits<Ticks>::min();

inline Ticks to_ticks(Clock::time_point t) { return t.time_since_epoch().count(); }
inline Ticks to_ticks(Clock::duration d) { return d.count(); }

// 64-bit FNV-1a: stable across runs and builds (endpoint tokens in sticky cookies rely on that).
inline std::uint64_t hash64(std::string_view s) {
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// Whether the n bytes at a and b are equal: eight at a time, inline. For the short keys of the hot path
// (hosts, paths), where a call to memcmp costs more than the comparison.
inline bool equal_bytes(const char* a, const char* b, std::size_t n) {
  while (n >= 8) {
    std::uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  while (n-- > 0) {
    if (*a++ != *b++) return false;
  }
  return true;
}

// splitmix64's finaliser: spreads the bits of a weak hash.
inline std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

}  // namespace sluice::routing
