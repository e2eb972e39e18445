// The immutable routing snapshot. (Minimal first slice; routing deepens it.)
#pragma once

#include <cstdint>

namespace sluice::routing {

struct Snapshot {
  std::uint64_t generation = 0;
};

}  // namespace sluice::routing
