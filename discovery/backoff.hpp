// Capped exponential backoff with jitter for reconnecting to the API server.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace sluice::discovery {

using std::chrono::milliseconds;

// Delay n (0-based, since the last success) is drawn uniformly from
// [ceiling_n * (1 - jitter), ceiling_n] with ceiling_n = min(initial * 2^n, max).
// Defaults: 1 s ceiling with 20% jitter -> the first delay is 0.8..1.0 s; the cap is 30 s -> 24..30 s,
// reached after 5 failures (1, 2, 4, 8, 16, 30). Jitter keeps many proxies from reconnecting in step.
class Backoff {
 public:
  static constexpr milliseconds default_initial{1000};
  static constexpr milliseconds default_max{30000};
  static constexpr double default_jitter = 0.2;

  explicit Backoff(milliseconds initial = default_initial, milliseconds max = default_max,
                   double jitter = default_jitter, std::uint64_t seed = std::random_device{}())
      : initial_(initial), max_(max), jitter_(jitter), rng_(seed) {}

  // The next delay; each call doubles the ceiling up to max.
  milliseconds next();
  // After a success: the next delay starts again from `initial`.
  void reset() { attempt_ = 0; }
  std::uint32_t attempts() const { return attempt_; }

 private:
  milliseconds initial_;
  milliseconds max_;
  double jitter_;
  std::uint32_t attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace sluice::discovery
