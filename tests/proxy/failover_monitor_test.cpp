// FailoverMonitor (proxy/failover_monitor.hpp): each scan compares every cluster's state and the tier that
// carries most of a service's traffic with the last scan's, and counts and keeps a change as an event.
// A routing Table and EndpointRegistry as in tests/routing/fixtures.hpp, a fake clock, no thread.
#include <catch2/catch.hpp>

#include "prometheus/writer.hpp"

#include <optional>
#include <sstream>
#include <string>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "proxy/failover_monitor.hpp"
#include "tests/routing/fixtures.hpp"

using namespace sluice;
using namespace sluice::routing::test;

namespace {

const std::string kService = "svc.default";

// svc: four local endpoints (tier 0), two in cluster-1 (tier 1, FailOver).
routing::Model failover_model() {
  auto s = service("svc", {cluster(kLocal, endpoints(4, "10.0.0.")), cluster(kC1, endpoints(2, "10.1.0."))});
  s.policy.lb_type = config::LbType::fail_over;
  s.policy.targets = {config::PolicyTarget{kC1, std::nullopt}};
  s.outlier_detection.max_ejection_percent = 100;
  return model_of({s});
}

struct MonitorHarness {
  MonitorHarness() : monitor(control, table) { publish(failover_model()); }

  void publish(const routing::Model& m) { table.publish(routing::build_snapshot(m, registry, clock.now)); }

  // Ejects the endpoints of svc whose address starts with `prefix` for 30 s (as outlier detection would).
  void eject(const std::string& prefix) {
    const auto snap = table.load();
    for (const auto& e : snap->services[0].endpoints) {
      if (e.address.starts_with(prefix)) {
        e.state->ejected_until.store(routing::to_ticks(clock.now + 30s));
        e.state->service->bump_epoch();
      }
    }
  }

  std::string metrics() const {
    std::string out;
    prometheus::Writer writer(out);
    monitor.render_metrics(writer);
    return out;
  }

  std::string last_event() const {
    const auto j = monitor.last_event(kService);
    return j.is_null() ? std::string() : j["event"].get<std::string>();
  }

  boost::asio::io_context control;  // never run: the test calls scan() itself
  routing::EndpointRegistry registry;
  routing::Table table;
  FakeClock clock;
  proxy::FailoverMonitor monitor;
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The value of the sample `series` (name and labels exactly as rendered) in Prometheus text, if present.
std::optional<double> sample(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return std::nullopt;
}

std::optional<double> healthy(const std::string& metrics, const std::string& cluster_key) {
  return sample(metrics, "sluice_cluster_healthy{service=\"" + kService + "\",cluster=\"" + cluster_key + "\"}");
}

std::optional<double> events(const std::string& metrics, const std::string& cluster_key, const std::string& to) {
  return sample(metrics, "sluice_failover_events_total{service=\"" + kService + "\",cluster=\"" + cluster_key +
                             "\",to=\"" + to + "\"}");
}

std::optional<double> tier_moves(const std::string& metrics, int to_tier) {
  return sample(metrics,
                "sluice_failover_tier_moves_total{service=\"" + kService + "\",to_tier=\"" + std::to_string(to_tier) + "\"}");
}

}  // namespace

TEST_CASE("failover monitor: the first scan records the clusters' states without an event", "[proxy]") {
  MonitorHarness h;
  h.monitor.scan(h.clock.now);
  const auto m = h.metrics();
  CHECK(healthy(m, kLocal) == 1);
  CHECK(healthy(m, kC1) == 1);
  CHECK_FALSE(contains(m, "sluice_failover_events_total{"));
  CHECK_FALSE(contains(m, "sluice_failover_tier_moves_total{"));
  CHECK(h.monitor.last_event(kService).is_null());
  // Nothing changed: a second scan adds nothing either.
  h.monitor.scan(h.clock.now);
  CHECK(h.metrics() == m);
}

TEST_CASE("failover monitor: cluster state changes and tier moves are events", "[proxy]") {
  MonitorHarness h;
  h.monitor.scan(h.clock.now);

  // Two of four local endpoints out: 2/4 * 1.4 = 70% < 100%: degraded, and 30% spills to cluster-1, so
  // the local tier still carries most of the traffic (no tier move).
  h.eject("10.0.0.1");
  h.eject("10.0.0.2");
  h.monitor.scan(h.clock.now);
  auto m = h.metrics();
  CHECK(healthy(m, kLocal) == 0.5);
  CHECK(events(m, kLocal, "degraded") == 1);
  CHECK_FALSE(contains(m, "sluice_failover_tier_moves_total{"));
  CHECK(contains(h.last_event(), "cluster " + kLocal + " healthy -> degraded (2/4 endpoints healthy, 2 ejected"));

  // The rest of them out: the local cluster is down and all traffic moves to tier 1.
  h.eject("10.0.0.");
  h.monitor.scan(h.clock.now);
  m = h.metrics();
  CHECK(healthy(m, kLocal) == 0);
  CHECK(events(m, kLocal, "down") == 1);
  CHECK(tier_moves(m, 1) == 1);
  CHECK(contains(h.last_event(), "traffic moved from tier 0 to tier 1 (100% of requests)"));
  CHECK(healthy(m, kC1) == 1);  // cluster-1 itself is unchanged

  // The ejections end (past their 30 s and any slow start): healthy again, traffic back on tier 0.
  h.clock.advance(31s + 10s);
  h.monitor.scan(h.clock.now);
  m = h.metrics();
  CHECK(healthy(m, kLocal) == 1);
  CHECK(events(m, kLocal, "healthy") == 1);
  CHECK(tier_moves(m, 0) == 1);
  CHECK(contains(h.last_event(), "traffic moved from tier 1 to tier 0"));
  const auto j = h.monitor.last_event(kService);
  CHECK(j["seconds_ago"] == 0);
}

TEST_CASE("failover monitor: a cluster that appears in a new snapshot is no event", "[proxy]") {
  MonitorHarness h;
  h.monitor.scan(h.clock.now);
  auto m = failover_model();
  m.services[0].clusters.push_back(cluster(kC3, {}));  // no endpoints yet: down from the start
  m.services[0].policy.targets.push_back(config::PolicyTarget{kC3, std::nullopt});
  h.publish(m);
  h.monitor.scan(h.clock.now);
  const auto metrics = h.metrics();
  CHECK_FALSE(contains(metrics, "sluice_failover_events_total{"));
  CHECK(h.monitor.last_event(kService).is_null());
  CHECK(h.monitor.last_event("other.default").is_null());
}
