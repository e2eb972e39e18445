// Failover as a first-class event: the control thread watches every service's
// clusters and tiers, and each change of a cluster's state (healthy, degraded,
// down) or of the tier carrying the traffic is logged once with its cause and
// counted; so are ejections and returns by reason and retries the budget refused,
// summed per scan. The last event per service is kept for /explain.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json_fwd.hpp>

#include "net/net.hpp"
#include "routing/clock.hpp"

namespace sluice::routing {
class Table;
}

namespace sluice::prometheus {
class Writer;
}

namespace sluice::proxy {

class FailoverMonitor {
 public:
  FailoverMonitor(net::io_context& control, const routing::Table& table);

  void start();
  void stop();

  // Writes sluice_failover_events_total{service,cluster,to}, sluice_failover_tier_moves_total{service,to_tier}
  // and sluice_cluster_healthy{service,cluster}. Control thread.
  void render_metrics(prometheus::Writer& out) const;
  // The last event of `service_id` as JSON, or null. Control thread.
  nlohmann::json last_event(const std::string& service_id) const;

  // One scan of the current snapshot at `now`: what start() repeats every 200 ms, and what
  // tests/proxy/failover_monitor_test.cpp calls with its own clock. Control thread.
  void scan(routing::Clock::time_point now = routing::Clock::now());

 private:
  struct Event {
    std::string text;
    std::chrono::system_clock::time_point when;
  };

  // The outlier-detection counters of a service at the last scan, to log what changed since.
  struct Counters {
    std::uint64_t local_origin = 0, gateway_error = 0, http_5xx = 0, returns_probe = 0, returns_timer = 0,
                  budget_refused = 0;
    bool operator==(const Counters&) const = default;
  };
  void report_outlier_changes(const std::string& service_id, const Counters& now);

  net::io_context& control_;
  const routing::Table& table_;
  net::steady_timer timer_;
  bool stopped_ = false;
  std::map<std::pair<std::string, std::string>, std::string> cluster_state_;  // (service, cluster) -> state
  std::map<std::string, unsigned> active_tier_;                               // service -> tier with most load
  std::map<std::tuple<std::string, std::string, std::string>, std::uint64_t> events_;  // (svc, cluster, to)
  std::map<std::pair<std::string, unsigned>, std::uint64_t> tier_moves_;  // (svc, to tier)
  std::map<std::string, Event> last_;
  std::map<std::string, Counters> counters_;  // service -> outlier counters at the last scan
};

}  // namespace sluice::proxy
