// Prometheus text rendering of the proxy's counters and the routing table's live state.
#include <chrono>
#include <string>

#include "proxy/admin.hpp"
#include "proxy/server.hpp"
#include "routing/health.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

namespace sluice::proxy {
namespace {

// Label values are escaped per the exposition format: backslash, double quote, newline.
std::string escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out.append(name);
  if (!labels.empty()) out.append("{").append(labels).append("}");
  char buf[32];
  std::snprintf(buf, sizeof buf, " %.17g\n", value);
  out.append(buf);
}

template <class F>
void worker_counter(std::string& out, const Server& server, std::string_view name, std::string_view type,
                    std::string_view help, F&& pick) {
  family(out, name, type, help);
  sample(out, name, "", static_cast<double>(sum_workers(server, pick)));
}

// Upgraded connections: upgrades by result, tunnels open, bytes each way, time spent.
void render_tunnels(std::string& out, const Server& s) {
  family(out, "sluice_upgrades_total", "counter",
         "Upgrade requests by result: switched (101, a tunnel), declined (the endpoint answered otherwise), "
         "refused (by the proxy: tunnel limit or draining).");
  sample(out, "sluice_upgrades_total", "result=\"switched\"",
         static_cast<double>(sum_workers(s, [](const WorkerStats& w) { return w.upgrades_switched.get(); })));
  sample(out, "sluice_upgrades_total", "result=\"declined\"",
         static_cast<double>(sum_workers(s, [](const WorkerStats& w) { return w.upgrades_declined.get(); })));
  sample(out, "sluice_upgrades_total", "result=\"refused\"",
         static_cast<double>(sum_workers(s, [](const WorkerStats& w) { return w.upgrades_refused.get(); })));
  worker_counter(out, s, "sluice_tunnels_active", "gauge", "Upgraded connections open.",
                 [](const WorkerStats& w) { return static_cast<std::uint64_t>(w.tunnels_active.get()); });
  family(out, "sluice_tunnel_bytes_total", "counter", "Bytes carried by tunnels, by direction (up: to the endpoint).");
  sample(out, "sluice_tunnel_bytes_total", "direction=\"up\"",
         static_cast<double>(sum_workers(s, [](const WorkerStats& w) { return w.tunnel_bytes_up.get(); })));
  sample(out, "sluice_tunnel_bytes_total", "direction=\"down\"",
         static_cast<double>(sum_workers(s, [](const WorkerStats& w) { return w.tunnel_bytes_down.get(); })));
  worker_counter(out, s, "sluice_tunnels_closed_total", "counter", "Tunnels ended.",
                 [](const WorkerStats& w) { return w.tunnels_closed.get(); });
  worker_counter(out, s, "sluice_tunnel_duration_seconds_total", "counter",
                 "Total duration of the tunnels ended (divide by sluice_tunnels_closed_total for the mean).",
                 [](const WorkerStats& w) { return w.tunnel_seconds.get(); });
  worker_counter(out, s, "sluice_http2_connections_total", "counter",
                 "Downstream connections that spoke HTTP/2 (h2c prior knowledge or h2 by ALPN).",
                 [](const WorkerStats& w) { return w.h2_connections.get(); });
  worker_counter(out, s, "sluice_http2_streams_total", "counter",
                 "HTTP/2 request streams (also counted in sluice_requests_total).",
                 [](const WorkerStats& w) { return w.h2_streams.get(); });
}

void render_proxy(std::string& out, const Server& s) {
  worker_counter(out, s, "sluice_downstream_connections_total", "counter", "Downstream connections accepted.",
                 [](const WorkerStats& w) { return w.downstream_connections.get(); });
  worker_counter(out, s, "sluice_downstream_connections_active", "gauge", "Open downstream connections.",
                 [](const WorkerStats& w) { return static_cast<std::uint64_t>(w.downstream_active_connections.get()); });
  worker_counter(out, s, "sluice_requests_active", "gauge", "Requests in flight.",
                 [](const WorkerStats& w) { return static_cast<std::uint64_t>(w.active_requests.get()); });
  worker_counter(out, s, "sluice_requests_total", "counter", "Requests received.",
                 [](const WorkerStats& w) { return w.requests.get(); });
  family(out, "sluice_responses_total", "counter", "Responses sent downstream by status class.");
  for (unsigned c = 1; c <= 5; ++c) {
    const auto n = sum_workers(s, [c](const WorkerStats& w) { return w.responses_by_class[c].get(); });
    sample(out, "sluice_responses_total", "class=\"" + std::to_string(c) + "xx\"", static_cast<double>(n));
  }
  worker_counter(out, s, "sluice_bad_requests_total", "counter", "Requests refused as malformed (400/431).",
                 [](const WorkerStats& w) { return w.bad_requests.get(); });
  worker_counter(out, s, "sluice_no_route_total", "counter", "Requests answered 404: no route.",
                 [](const WorkerStats& w) { return w.no_route.get(); });
  worker_counter(out, s, "sluice_no_endpoint_total", "counter", "Requests answered 503: no usable endpoint.",
                 [](const WorkerStats& w) { return w.no_endpoint.get(); });
  worker_counter(out, s, "sluice_upstream_connects_total", "counter", "Upstream connections attempted.",
                 [](const WorkerStats& w) { return w.upstream_connects.get(); });
  worker_counter(out, s, "sluice_upstream_connect_failures_total", "counter", "Upstream connects that failed.",
                 [](const WorkerStats& w) { return w.upstream_connect_failures.get(); });
  worker_counter(out, s, "sluice_upstream_reuses_total", "counter", "Requests sent on a pooled connection.",
                 [](const WorkerStats& w) { return w.upstream_reuses.get(); });
  worker_counter(out, s, "sluice_upstream_resets_total", "counter", "Upstream connections lost before a response.",
                 [](const WorkerStats& w) { return w.upstream_resets.get(); });
  worker_counter(out, s, "sluice_upstream_timeouts_total", "counter", "Upstream response timeouts (504).",
                 [](const WorkerStats& w) { return w.upstream_timeouts.get(); });
  worker_counter(out, s, "sluice_retries_total", "counter", "Requests retried on another endpoint.",
                 [](const WorkerStats& w) { return w.retries.get(); });
  worker_counter(out, s, "sluice_request_body_bytes_total", "counter", "Request body bytes received.",
                 [](const WorkerStats& w) { return w.bytes_received.get(); });
  worker_counter(out, s, "sluice_response_body_bytes_total", "counter", "Response body bytes sent.",
                 [](const WorkerStats& w) { return w.bytes_sent.get(); });
  render_tunnels(out, s);
}

void render_routing(std::string& out, const routing::Snapshot& snap) {
  const auto age = std::chrono::duration<double>(routing::Clock::now() - snap.built_at).count();
  family(out, "sluice_snapshot_generation", "gauge", "Generation of the routing snapshot in use.");
  sample(out, "sluice_snapshot_generation", "", static_cast<double>(snap.generation));
  family(out, "sluice_snapshot_age_seconds", "gauge", "Seconds since the routing snapshot in use was built.");
  sample(out, "sluice_snapshot_age_seconds", "", snap.built_at == routing::Clock::time_point{} ? 0 : age);
  family(out, "sluice_snapshot_stale", "gauge", "1 while the routing data cannot be vouched for by its source.");
  sample(out, "sluice_snapshot_stale", "", snap.stale ? 1 : 0);

  family(out, "sluice_upstream_requests_total", "counter", "Requests sent to endpoints, by service and cluster.");
  for (const auto& svc : snap.services) {
    for (const auto& c : svc.clusters) {
      std::uint64_t n = 0;
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) {
        n += svc.endpoints[i].state->requests_total.load(std::memory_order_relaxed);
      }
      sample(out, "sluice_upstream_requests_total",
             "service=\"" + escape(svc.id) + "\",cluster=\"" + escape(c.key) + "\"", static_cast<double>(n));
    }
  }
  family(out, "sluice_upstream_failures_total", "counter", "Failed attempts (5xx, connect, reset, timeout).");
  for (const auto& svc : snap.services) {
    for (const auto& c : svc.clusters) {
      std::uint64_t n = 0;
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) {
        n += svc.endpoints[i].state->failures_total.load(std::memory_order_relaxed);
      }
      sample(out, "sluice_upstream_failures_total",
             "service=\"" + escape(svc.id) + "\",cluster=\"" + escape(c.key) + "\"", static_cast<double>(n));
    }
  }
  family(out, "sluice_endpoints_ejected", "gauge", "Endpoints currently ejected by outlier detection.");
  const auto now = routing::to_ticks(routing::Clock::now());
  for (const auto& svc : snap.services) {
    for (const auto& c : svc.clusters) {
      std::uint64_t n = 0;
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) {
        if (svc.endpoints[i].state->ejected_until.load(std::memory_order_relaxed) > now) ++n;
      }
      sample(out, "sluice_endpoints_ejected",
             "service=\"" + escape(svc.id) + "\",cluster=\"" + escape(c.key) + "\"", static_cast<double>(n));
    }
  }
  family(out, "sluice_ejections_total", "counter", "Outlier ejections, by service and reason.");
  for (const auto& svc : snap.services) {
    for (auto r : {routing::EjectionReason::local_origin, routing::EjectionReason::gateway_error,
                   routing::EjectionReason::http_5xx}) {
      sample(out, "sluice_ejections_total",
             "service=\"" + escape(svc.id) + "\",reason=\"" + routing::to_string(r) + "\"",
             static_cast<double>(svc.state->ejections_by_reason[static_cast<std::size_t>(r)].load(std::memory_order_relaxed)));
    }
  }
  family(out, "sluice_ejection_returns_total", "counter", "Ejections ended, by service and how (probe, timer).");
  for (const auto& svc : snap.services) {
    sample(out, "sluice_ejection_returns_total", "service=\"" + escape(svc.id) + "\",by=\"probe\"",
           static_cast<double>(svc.state->returns_probe.load(std::memory_order_relaxed)));
    sample(out, "sluice_ejection_returns_total", "service=\"" + escape(svc.id) + "\",by=\"timer\"",
           static_cast<double>(svc.state->returns_timer.load(std::memory_order_relaxed)));
  }
  family(out, "sluice_retries_refused_by_budget_total", "counter", "Retries the retry budget refused, by service.");
  for (const auto& svc : snap.services) {
    sample(out, "sluice_retries_refused_by_budget_total", "service=\"" + escape(svc.id) + "\"",
           static_cast<double>(svc.state->budget_exhausted.load(std::memory_order_relaxed)));
  }
  family(out, "sluice_service_retries_total", "counter", "Retries granted, by service.");
  for (const auto& svc : snap.services) {
    sample(out, "sluice_service_retries_total", "service=\"" + escape(svc.id) + "\"",
           static_cast<double>(svc.state->retries_total.load(std::memory_order_relaxed)));
  }
}

}  // namespace

std::string render_metrics(const AdminSources& sources) {
  std::string out;
  out.reserve(8192);
  if (sources.server) render_proxy(out, *sources.server);
  if (sources.table) render_routing(out, *sources.table->load());
  if (sources.extra_metrics) sources.extra_metrics(out);
  return out;
}

}  // namespace sluice::proxy
