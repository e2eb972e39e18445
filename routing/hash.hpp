// Hashing and comparison helpers of routing's hot path (host map, endpoint tokens, Maglev, stickiness).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>

namespace sluice::routing {

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
