// Active checks and ejection probes, run by the control thread off the request path.
//
// Health checks: for every endpoint of a service whose health_check is enabled, a GET of the check path
// every interval (plus jitter, so many proxies do not probe in lockstep), answered 2xx within the
// timeout, is a pass; anything else a failure. Results go to the routing registry, which applies the
// healthy/unhealthy thresholds; pickers skip endpoints failing their checks. A remote cluster's gateway
// is checked the same way (with its path prefix), so the loss of a whole cluster is seen within
// interval * unhealthy_threshold.
//
// Ejection probes: an endpoint that outlier detection took out comes back when a probe passes
// (routing/health.hpp: probe_due, probe_kind, record_probe): a connect after a local-origin ejection, an
// HTTP request (the health check's, else GET / answered without a 5xx) after the others. Backoff and
// flap damping are routing's; this class only dials.
//
// Both use TLS where requests do: the cluster's own `tls`, else mesh TLS towards another cluster.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/config.hpp"
#include "net/net.hpp"
#include "proxy/tls.hpp"

namespace sluice::routing {
class Table;
class EndpointRegistry;
struct Snapshot;
struct ServiceEntry;
struct EndpointEntry;
}  // namespace sluice::routing

namespace sluice::proxy {

class HealthChecker {
 public:
  HealthChecker(net::io_context& control, const routing::Table& table, routing::EndpointRegistry& registry,
                std::optional<config::MeshTls> mesh_tls = std::nullopt);

  void start();
  void stop();

  std::uint64_t probes() const { return probes_; }
  std::uint64_t probe_failures() const { return probe_failures_; }
  std::uint64_t ejection_probes() const { return ejection_probes_; }

  // What one probe asks of an endpoint.
  struct Probe {
    std::string address;
    std::uint16_t port = 0;
    std::optional<config::TlsClient> tls;
    bool http = true;            // false: a connect (and TLS handshake) is enough
    bool any_non_5xx = false;    // pass on any status below 500 (else 2xx only)
    std::string target;          // request target
    std::chrono::milliseconds timeout{1000};
  };
  struct Verdict {
    bool passed = false;
    bool reachable = false;      // a connection (and handshake) was made
    std::string why;             // the failure, for the log
  };

 private:
  struct Target {
    std::chrono::steady_clock::time_point next_due{};
    bool in_flight = false;
    bool seen = false;  // present in the latest scan
  };

  void tick();
  void schedule_checks(const std::shared_ptr<const routing::Snapshot>& snapshot,
                       std::chrono::steady_clock::time_point now);
  void schedule_ejection_probes(const std::shared_ptr<const routing::Snapshot>& snapshot,
                                std::chrono::steady_clock::time_point now);
  Probe probe_for(const routing::ServiceEntry& svc, const routing::EndpointEntry& ep, bool http) const;
  net::awaitable<Verdict> run(Probe probe);
  net::awaitable<void> check(std::string identity, Probe probe, std::uint32_t healthy_threshold,
                             std::uint32_t unhealthy_threshold);
  net::awaitable<void> probe_ejected(std::shared_ptr<const routing::Snapshot> snapshot, std::uint32_t service,
                                     std::uint32_t endpoint, Probe probe);

  net::io_context& control_;
  const routing::Table& table_;
  routing::EndpointRegistry& registry_;
  std::optional<config::MeshTls> mesh_tls_;
  ClientTlsCache tls_;
  net::steady_timer timer_;
  std::unordered_map<std::string, Target> targets_;
  std::unordered_map<std::string, bool> probing_;  // ejected endpoints with a probe in flight
  std::mt19937_64 rng_{std::random_device{}()};
  bool stopped_ = false;
  std::uint64_t probes_ = 0;
  std::uint64_t probe_failures_ = 0;
  std::uint64_t ejection_probes_ = 0;
};

}  // namespace sluice::proxy
