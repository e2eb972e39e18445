#include "discovery/backoff.hpp"

#include <algorithm>

namespace sluice::discovery {

milliseconds Backoff::next() {
  // Doubling stops once the cap is reached, so the shift never overflows.
  double ceiling = static_cast<double>(initial_.count());
  for (std::uint32_t i = 0; i < attempt_ && ceiling < static_cast<double>(max_.count()); ++i) ceiling *= 2;
  ceiling = std::min(ceiling, static_cast<double>(max_.count()));
  ++attempt_;
  std::uniform_real_distribution<double> share(1.0 - jitter_, 1.0);
  return milliseconds(static_cast<std::int64_t>(ceiling * share(rng_)));
}

}  // namespace sluice::discovery
