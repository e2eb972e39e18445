// Active HTTP health checks, run by the control thread off the request path.
//
// For every endpoint of a service whose health_check is enabled, a GET of the
// check path every interval (plus jitter, so many proxies do not probe in
// lockstep), answered 2xx within the timeout, is a pass; anything else a
// failure. Results go to the routing registry, which applies the
// healthy/unhealthy thresholds; pickers skip endpoints failing their checks.
// A remote cluster's gateway is checked the same way (with its path prefix),
// so the loss of a whole cluster is seen within interval * unhealthy_threshold.
#pragma once

#include <chrono>
#include <random>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "net/net.hpp"

namespace sluice::routing {
class Table;
class EndpointRegistry;
}  // namespace sluice::routing

namespace sluice::proxy {

class HealthChecker {
 public:
  HealthChecker(net::io_context& control, const routing::Table& table, routing::EndpointRegistry& registry);

  void start();
  void stop();

  std::uint64_t probes() const { return probes_; }
  std::uint64_t probe_failures() const { return probe_failures_; }

 private:
  struct Target {
    std::chrono::steady_clock::time_point next_due{};
    bool in_flight = false;
    bool seen = false;  // present in the latest scan
  };

  void tick();
  net::awaitable<void> probe(std::string identity, std::string address, std::uint16_t port, std::string target,
                             std::chrono::milliseconds timeout, std::uint32_t healthy_threshold,
                             std::uint32_t unhealthy_threshold);

  net::io_context& control_;
  const routing::Table& table_;
  routing::EndpointRegistry& registry_;
  net::steady_timer timer_;
  std::unordered_map<std::string, Target> targets_;
  std::mt19937_64 rng_{std::random_device{}()};
  bool stopped_ = false;
  std::uint64_t probes_ = 0;
  std::uint64_t probe_failures_ = 0;
};

}  // namespace sluice::proxy
