#include "proxy/failover_monitor.hpp"

#include <nlohmann/json.hpp>

#include "log/logger.hpp"
#include "prometheus/writer.hpp"
#include "routing/health.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"
#include "routing/tiers.hpp"
#include "routing/view.hpp"

namespace sluice::proxy {
namespace {

constexpr auto kScanInterval = std::chrono::milliseconds(200);

}  // namespace

FailoverMonitor::FailoverMonitor(net::io_context& control, const routing::Table& table)
    : control_(control), table_(table), timer_(control) {}

void FailoverMonitor::start() {
  scan();
  timer_.expires_after(kScanInterval);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec && !stopped_) start();
  });
}

void FailoverMonitor::stop() {
  stopped_ = true;
  timer_.cancel();
}

void FailoverMonitor::scan(routing::Clock::time_point at) {
  const auto snapshot = table_.load();
  const auto now = routing::to_ticks(at);
  for (const auto& svc : snapshot->services) {
    for (const auto& cluster : svc.clusters) {
      std::size_t healthy = 0;
      std::uint32_t ejected = 0, dead = 0, failing_checks = 0;
      for (std::uint32_t i = cluster.first; i < cluster.first + cluster.count; ++i) {
        const auto& ep = svc.endpoints[i];
        const auto h = routing::evaluate(svc, ep, now);
        if (h.healthy) healthy += 1;
        if (h.ejected) ++ejected;
        if (h.dead) ++dead;
        if (ep.state->health_check.load(std::memory_order_relaxed) == routing::HealthCheckState::unhealthy) {
          ++failing_checks;
        }
      }
      const auto state = routing::to_string(
          routing::cluster_health(healthy, cluster.count, svc.policy.overprovisioning));
      auto& known = cluster_state_[{svc.id, cluster.key}];
      if (known == state) continue;
      const bool first_sight = known.empty();
      const auto before = first_sight ? std::string("new") : known;
      known = state;
      // A cluster seen for the first time is a fact, not an event (a Service with no pods yet is "down").
      if (first_sight) continue;
      const auto text = "service " + svc.id + ": cluster " + cluster.key + " " + before + " -> " + state + " (" +
                        std::to_string(static_cast<int>(healthy)) + "/" + std::to_string(cluster.count) +
                        " endpoints healthy, " + std::to_string(ejected) + " ejected by outlier detection (" + std::to_string(dead) + " unreachable), " +
                        std::to_string(failing_checks) + " failing health checks; tier " +
                        std::to_string(cluster.tier) + ")";
      log::warn("failover: " + text);
      ++events_[{svc.id, cluster.key, state}];
      last_[svc.id] = Event{text, std::chrono::system_clock::now()};
    }
    const auto& st = *svc.state;
    const auto by = [&st](routing::EjectionReason r) {
      return st.ejections_by_reason[static_cast<std::size_t>(r)].load(std::memory_order_relaxed);
    };
    report_outlier_changes(svc.id, Counters{by(routing::EjectionReason::local_origin),
                                            by(routing::EjectionReason::gateway_error),
                                            by(routing::EjectionReason::http_5xx),
                                            st.returns_probe.load(std::memory_order_relaxed),
                                            st.returns_timer.load(std::memory_order_relaxed),
                                            st.budget_exhausted.load(std::memory_order_relaxed)});
    // Which tier carries most of the traffic now (FailOver): a move is a failover (or failback) event.
    routing::ServiceView view;
    routing::inspect_view(svc, now, view);
    unsigned top = 0;
    double top_load = -1;
    for (unsigned t = 0; t < view.tiers.size(); ++t) {
      if (view.tiers[t].load.load > top_load) {
        top_load = view.tiers[t].load.load;
        top = t;
      }
    }
    auto [it, fresh] = active_tier_.try_emplace(svc.id, top);
    if (!fresh && it->second != top) {
      const auto text = "service " + svc.id + ": traffic moved from tier " + std::to_string(it->second) +
                        " to tier " + std::to_string(top) + " (" + std::to_string(static_cast<int>(top_load)) +
                        "% of requests)";
      log::warn("failover: " + text);
      ++tier_moves_[{svc.id, top}];
      last_[svc.id] = Event{text, std::chrono::system_clock::now()};
      it->second = top;
    }
  }
}

void FailoverMonitor::report_outlier_changes(const std::string& service_id, const Counters& now) {
  auto [it, fresh] = counters_.try_emplace(service_id, now);
  if (fresh || it->second == now) return;
  const Counters& was = it->second;
  std::string text;
  const auto part = [&text](std::uint64_t after, std::uint64_t before, const char* what) {
    if (after <= before) return;
    if (!text.empty()) text += ", ";
    text += std::to_string(after - before) + " " + what;
  };
  part(now.local_origin, was.local_origin, "ejected as unreachable (local-origin failures)");
  part(now.gateway_error, was.gateway_error, "ejected for gateway errors");
  part(now.http_5xx, was.http_5xx, "ejected for 5xx");
  part(now.returns_probe, was.returns_probe, "back by probe");
  part(now.returns_timer, was.returns_timer, "back by the backstop timer");
  part(now.budget_refused, was.budget_refused, "retries refused by the retry budget");
  it->second = now;
  if (text.empty()) return;
  // Logged, not kept as the service's last failover event: /explain's event names the cluster or tier
  // move these ejections cause, and /explain shows the counters themselves.
  log::warn("outlier detection: service " + service_id + ": " + text);
}

void FailoverMonitor::render_metrics(prometheus::Writer& out) const {
  using prometheus::Type;
  out.family("sluice_failover_events_total", Type::counter, "Cluster state changes and tier moves, by service.");
  for (const auto& [key, n] : events_) {
    const auto& [svc, cluster, to] = key;
    out.sample({{"service", svc}, {"cluster", cluster}, {"to", to}}, n);
  }
  out.family("sluice_failover_tier_moves_total", Type::counter,
             "Moves of most of a service's traffic to another tier.");
  for (const auto& [key, n] : tier_moves_) {
    out.sample({{"service", key.first}, {"to_tier", std::to_string(key.second)}}, n);
  }
  out.family("sluice_cluster_healthy", Type::gauge,
             "1 when the cluster's endpoints of the service are healthy, 0.5 degraded, 0 down.");
  for (const auto& [key, state] : cluster_state_) {
    using routing::ClusterHealth;
    const double v = state == routing::to_string(ClusterHealth::healthy)    ? 1
                     : state == routing::to_string(ClusterHealth::degraded) ? 0.5
                                                                             : 0;
    out.sample({{"service", key.first}, {"cluster", key.second}}, v);
  }
}

nlohmann::json FailoverMonitor::last_event(const std::string& service_id) const {
  auto it = last_.find(service_id);
  if (it == last_.end()) return nullptr;
  const auto age = std::chrono::duration<double>(std::chrono::system_clock::now() - it->second.when).count();
  return {{"event", it->second.text}, {"seconds_ago", static_cast<long long>(age)}};
}

}  // namespace sluice::proxy
