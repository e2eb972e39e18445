// EndpointRegistry: the owner of per-endpoint and per-service mutable state, keyed by identity, so that
// state survives snapshot rebuilds (a rebuild never resets counters nor forgives an ejection).
//
// Used by the control side only (build_snapshot, health checks, admin); workers reach the state through
// the snapshot's pointers and never touch the registry. Its map is guarded by a mutex for that reason:
// no request path ever takes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "routing/clock.hpp"
#include "routing/endpoint_state.hpp"
#include "routing/hash.hpp"
#include "routing/huge_pages.hpp"

namespace sluice::routing {

class EndpointRegistry {
 public:
  // How long an endpoint absent from every snapshot keeps its state (so that one coming back within
  // that time keeps its ejection and counters).
  static constexpr std::chrono::minutes kRetention{10};

  EndpointRegistry() = default;
  EndpointRegistry(const EndpointRegistry&) = delete;
  EndpointRegistry& operator=(const EndpointRegistry&) = delete;

  // --- used by build_snapshot ---

  // Starts a build: entries not acquired until end_build() count as absent from the new snapshot.
  void begin_build();

  // The state of service `id`, created on first use. `existed` is set to whether it existed before.
  std::shared_ptr<ServiceState> acquire_service(const std::string& id, bool* existed = nullptr);

  // The state of endpoint `identity` in `service`. A new endpoint of an existing service, or one coming
  // back after being absent, starts a slow-start ramp at `now` (when `ramp` is true); the very first
  // endpoints of a new service do not.
  std::shared_ptr<EndpointState> acquire_endpoint(const std::string& identity,
                                                  const std::shared_ptr<ServiceState>& service,
                                                  bool ramp, Clock::time_point now);

  // The same with the identity's token (hash64(identity)) already computed by the caller.
  std::shared_ptr<EndpointState> acquire_endpoint(std::string_view identity, std::uint64_t token,
                                                  const std::shared_ptr<ServiceState>& service,
                                                  bool ramp, Clock::time_point now);

  // Ends a build: marks unacquired entries absent and drops those absent longer than kRetention that no
  // snapshot uses any more and that are not ejected.
  void end_build(Clock::time_point now);

  // --- health checks and admin (any non-worker thread) ---

  // The state of an endpoint, or null.
  std::shared_ptr<EndpointState> find(std::string_view identity) const;

  // Sets the active health-check verdict directly. Returns false when the identity is unknown.
  // Becoming healthy again starts a slow-start ramp at `now`.
  bool set_health_check_result(std::string_view identity, bool healthy, Clock::time_point now);

  // Records one probe result and applies thresholds: `unhealthy_threshold` consecutive failures make the
  // endpoint unhealthy, `healthy_threshold` consecutive successes healthy again. Returns false when the
  // identity is unknown.
  bool record_health_check(std::string_view identity, bool passed, std::uint32_t healthy_threshold,
                           std::uint32_t unhealthy_threshold, Clock::time_point now);

  std::size_t endpoint_count() const;
  std::size_t service_count() const;

 private:
  struct EndpointSlot {
    std::string identity;
    std::uint64_t token = 0;  // hash64(identity)
    std::shared_ptr<EndpointState> state;
    std::uint64_t seen_build = 0;
    bool present = false;
    Clock::time_point absent_since{};
  };
  struct ServiceSlot {
    std::shared_ptr<ServiceState> state;
    std::uint64_t seen_build = 0;
  };

  static void set_check_state(EndpointState& s, HealthCheckState next, Clock::time_point now);

  // Slot of `identity` in endpoints_, or kNoSlot. Caller holds mutex_.
  static constexpr std::uint32_t kNoSlot = ~std::uint32_t{0};
  static constexpr std::size_t kMinIndex = 64;
  std::uint32_t find_slot(std::string_view identity, std::uint64_t token) const;
  // Rebuilds index_ for endpoints_ (after growth or erasure). Caller holds mutex_.
  void reindex(std::size_t capacity);

  mutable std::mutex mutex_;
  std::uint64_t build_ = 0;
  // Endpoints in insertion order (a rebuild visits them in about that order, so sequentially), found
  // through index_: open addressing (linear probing) over their tokens, entries slot + 1, 0 = empty,
  // a power-of-two size at most half full.
  std::vector<EndpointSlot> endpoints_;
  std::vector<std::uint32_t> index_;
  std::uint32_t cursor_ = kNoSlot;  // slot acquired last (kNoSlot + 1 wraps to 0: start of a build)
  std::unordered_map<std::string, ServiceSlot> services_;
  // The states themselves, packed in huge pages: a pick reads one endpoint state and one service state
  // of a service found at random, and make_shared would put each on a small page of its own.
  std::shared_ptr<BlockPool> endpoint_pool_ = std::make_shared<BlockPool>(alignof(EndpointState));
  std::shared_ptr<BlockPool> service_pool_ = std::make_shared<BlockPool>(alignof(ServiceState));
};

}  // namespace sluice::routing
