// Prometheus text rendering of the proxy's counters and the routing table's live state.
#include <chrono>
#include <string>

#include "prometheus/writer.hpp"
#include "proxy/admin.hpp"
#include "proxy/server.hpp"
#include "routing/health.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

namespace sluice::proxy {
namespace {

using prometheus::Type;

template <class F>
void worker_counter(prometheus::Writer& out, const Server& server, std::string_view name, Type type,
                    std::string_view help, F&& pick) {
  out.family(name, type, help);
  out.sample(sum_workers(server, pick));
}

// A family with one sample per label value: `pick(worker stats, value)` summed over the workers.
template <class F>
void worker_counter_by(prometheus::Writer& out, const Server& server, std::string_view name, Type type,
                       std::string_view help, std::string_view label,
                       std::initializer_list<std::string_view> values, F&& pick) {
  out.family(name, type, help);
  for (auto value : values) {
    out.sample({{label, value}},
               sum_workers(server, [&](const WorkerStats& w) { return pick(w, value); }));
  }
}

// Upgraded connections: upgrades by result, tunnels open, bytes each way, time spent.
void render_tunnels(prometheus::Writer& out, const Server& s) {
  worker_counter_by(out, s, "sluice_upgrades_total", Type::counter,
                    "Upgrade requests by result: switched (101, a tunnel), declined (the endpoint answered "
                    "otherwise), refused (by the proxy: tunnel limit or draining).",
                    "result", {"switched", "declined", "refused"}, [](const WorkerStats& w, std::string_view r) {
                      return r == "switched" ? w.upgrades_switched.get()
                             : r == "declined" ? w.upgrades_declined.get()
                                               : w.upgrades_refused.get();
                    });
  worker_counter(out, s, "sluice_tunnels_active", Type::gauge, "Upgraded connections open.",
                 [](const WorkerStats& w) { return static_cast<std::uint64_t>(w.tunnels_active.get()); });
  worker_counter_by(out, s, "sluice_tunnel_bytes_total", Type::counter,
                    "Bytes carried by tunnels, by direction (up: to the endpoint).", "direction", {"up", "down"},
                    [](const WorkerStats& w, std::string_view d) {
                      return d == "up" ? w.tunnel_bytes_up.get() : w.tunnel_bytes_down.get();
                    });
  worker_counter(out, s, "sluice_tunnels_closed_total", Type::counter, "Tunnels ended.",
                 [](const WorkerStats& w) { return w.tunnels_closed.get(); });
  worker_counter(out, s, "sluice_tunnel_duration_seconds_total", Type::counter,
                 "Total duration of the tunnels ended (divide by sluice_tunnels_closed_total for the mean).",
                 [](const WorkerStats& w) { return w.tunnel_seconds.get(); });
}

// HTTP/2 downstream: connections and streams.
void render_http2(prometheus::Writer& out, const Server& s) {
  worker_counter(out, s, "sluice_http2_connections_total", Type::counter,
                 "Downstream connections that spoke HTTP/2 (h2c prior knowledge or h2 by ALPN).",
                 [](const WorkerStats& w) { return w.h2_connections.get(); });
  worker_counter(out, s, "sluice_http2_streams_total", Type::counter,
                 "HTTP/2 request streams (also counted in sluice_requests_total).",
                 [](const WorkerStats& w) { return w.h2_streams.get(); });
}

// Overload: the connection limit, descriptor exhaustion on accept, the in-flight request limit.
void render_overload(prometheus::Writer& out, const Server& s) {
  worker_counter(out, s, "sluice_accept_paused_total", Type::counter,
                 "Times a listener stopped accepting on a worker at limits.max_connections_per_worker.",
                 [](const WorkerStats& w) { return w.accept_paused.get(); });
  worker_counter(out, s, "sluice_acceptors_paused", Type::gauge,
                 "Listeners (per worker) not accepting now: at the connection limit or backing off for lack of "
                 "descriptors.",
                 [](const WorkerStats& w) { return static_cast<std::uint64_t>(w.acceptors_paused.get()); });
  worker_counter(out, s, "sluice_accept_no_descriptors_total", Type::counter,
                 "Accepts that failed for lack of descriptors or socket memory (EMFILE, ENFILE, ENOBUFS, ENOMEM).",
                 [](const WorkerStats& w) { return w.accept_no_descriptors.get(); });
  worker_counter(out, s, "sluice_requests_overloaded_total", Type::counter,
                 "Requests answered 503 with Retry-After: past limits.max_requests_per_worker, or no descriptor "
                 "left for an upstream connection.",
                 [](const WorkerStats& w) { return w.requests_overloaded.get(); });
}

void render_proxy(prometheus::Writer& out, const Server& s) {
  worker_counter(out, s, "sluice_downstream_connections_total", Type::counter, "Downstream connections accepted.",
                 [](const WorkerStats& w) { return w.downstream_connections.get(); });
  worker_counter(out, s, "sluice_downstream_connections_active", Type::gauge, "Open downstream connections.",
                 [](const WorkerStats& w) { return static_cast<std::uint64_t>(w.downstream_active_connections.get()); });
  worker_counter(out, s, "sluice_requests_active", Type::gauge, "Requests in flight.",
                 [](const WorkerStats& w) { return static_cast<std::uint64_t>(w.active_requests.get()); });
  worker_counter(out, s, "sluice_requests_total", Type::counter, "Requests received.",
                 [](const WorkerStats& w) { return w.requests.get(); });
  out.family("sluice_responses_total", Type::counter, "Responses sent downstream by status class.");
  for (unsigned c = 1; c <= 5; ++c) {
    const auto n = sum_workers(s, [c](const WorkerStats& w) { return w.responses_by_class[c].get(); });
    out.sample({{"class", std::to_string(c) + "xx"}}, n);
  }
  worker_counter(out, s, "sluice_bad_requests_total", Type::counter, "Requests refused as malformed (400/431).",
                 [](const WorkerStats& w) { return w.bad_requests.get(); });
  worker_counter(out, s, "sluice_no_route_total", Type::counter, "Requests answered 404: no route.",
                 [](const WorkerStats& w) { return w.no_route.get(); });
  worker_counter(out, s, "sluice_no_endpoint_total", Type::counter, "Requests answered 503: no usable endpoint.",
                 [](const WorkerStats& w) { return w.no_endpoint.get(); });
  worker_counter(out, s, "sluice_upstream_connects_total", Type::counter, "Upstream connections attempted.",
                 [](const WorkerStats& w) { return w.upstream_connects.get(); });
  worker_counter(out, s, "sluice_upstream_connect_failures_total", Type::counter, "Upstream connects that failed.",
                 [](const WorkerStats& w) { return w.upstream_connect_failures.get(); });
  worker_counter(out, s, "sluice_upstream_tls_resumptions_total", Type::counter,
                 "Upstream TLS handshakes that resumed an earlier session.",
                 [](const WorkerStats& w) { return w.upstream_tls_resumptions.get(); });
  worker_counter(out, s, "sluice_upstream_reuses_total", Type::counter, "Requests sent on a pooled connection.",
                 [](const WorkerStats& w) { return w.upstream_reuses.get(); });
  worker_counter(out, s, "sluice_upstream_resets_total", Type::counter, "Upstream connections lost before a response.",
                 [](const WorkerStats& w) { return w.upstream_resets.get(); });
  worker_counter(out, s, "sluice_upstream_timeouts_total", Type::counter, "Upstream response timeouts (504).",
                 [](const WorkerStats& w) { return w.upstream_timeouts.get(); });
  worker_counter(out, s, "sluice_retries_total", Type::counter, "Requests retried on another endpoint.",
                 [](const WorkerStats& w) { return w.retries.get(); });
  worker_counter(out, s, "sluice_request_body_bytes_total", Type::counter, "Request body bytes received.",
                 [](const WorkerStats& w) { return w.bytes_received.get(); });
  worker_counter(out, s, "sluice_response_body_bytes_total", Type::counter, "Response body bytes sent.",
                 [](const WorkerStats& w) { return w.bytes_sent.get(); });
  render_tunnels(out, s);
  render_http2(out, s);
  render_overload(out, s);
}

// A family with a sample per service and cluster: the count of the cluster's endpoints' `count(state)`.
template <class F>
void per_cluster(prometheus::Writer& out, const routing::Snapshot& snap, std::string_view name, Type type,
                 std::string_view help, F&& count) {
  out.family(name, type, help);
  for (const auto& svc : snap.services) {
    for (const auto& c : svc.clusters) {
      std::uint64_t n = 0;
      for (std::uint32_t i = c.first; i < c.first + c.count; ++i) n += count(*svc.endpoints[i].state);
      out.sample({{"service", svc.id}, {"cluster", c.key}}, n);
    }
  }
}

// A family with a sample per service: `value(service state)`.
template <class F>
void per_service(prometheus::Writer& out, const routing::Snapshot& snap, std::string_view name,
                 std::string_view help, F&& value) {
  out.family(name, Type::counter, help);
  for (const auto& svc : snap.services) out.sample({{"service", svc.id}}, value(*svc.state));
}

void render_routing(prometheus::Writer& out, const routing::Snapshot& snap) {
  using routing::EjectionReason;
  using routing::EndpointState;
  using routing::ServiceState;
  constexpr auto relaxed = std::memory_order_relaxed;
  const auto age = std::chrono::duration<double>(routing::Clock::now() - snap.built_at).count();
  out.family("sluice_snapshot_generation", Type::gauge, "Generation of the routing snapshot in use.");
  out.sample(snap.generation);
  out.family("sluice_snapshot_age_seconds", Type::gauge, "Seconds since the routing snapshot in use was built.");
  out.sample(snap.built_at == routing::Clock::time_point{} ? 0 : age);
  out.family("sluice_snapshot_stale", Type::gauge, "1 while the routing data cannot be vouched for by its source.");
  out.sample(snap.stale);

  per_cluster(out, snap, "sluice_upstream_requests_total", Type::counter,
              "Requests sent to endpoints, by service and cluster.",
              [](const EndpointState& e) { return e.requests_total.load(relaxed); });
  per_cluster(out, snap, "sluice_upstream_failures_total", Type::counter,
              "Failed attempts (5xx, connect, reset, timeout).",
              [](const EndpointState& e) { return e.failures_total.load(relaxed); });
  const auto now = routing::to_ticks(routing::Clock::now());
  per_cluster(out, snap, "sluice_endpoints_ejected", Type::gauge, "Endpoints currently ejected by outlier detection.",
              [now](const EndpointState& e) { return std::uint64_t{e.ejected_until.load(relaxed) > now}; });
  out.family("sluice_ejections_total", Type::counter, "Outlier ejections, by service and reason.");
  for (const auto& svc : snap.services) {
    for (auto r : {EjectionReason::local_origin, EjectionReason::gateway_error, EjectionReason::http_5xx}) {
      out.sample({{"service", svc.id}, {"reason", routing::to_string(r)}},
                 svc.state->ejections_by_reason[static_cast<std::size_t>(r)].load(relaxed));
    }
  }
  out.family("sluice_ejection_returns_total", Type::counter, "Ejections ended, by service and how (probe, timer).");
  for (const auto& svc : snap.services) {
    out.sample({{"service", svc.id}, {"by", "probe"}}, svc.state->returns_probe.load(relaxed));
    out.sample({{"service", svc.id}, {"by", "timer"}}, svc.state->returns_timer.load(relaxed));
  }
  per_service(out, snap, "sluice_retries_refused_by_budget_total", "Retries the retry budget refused, by service.",
              [](const ServiceState& st) { return st.budget_exhausted.load(relaxed); });
  per_service(out, snap, "sluice_service_retries_total", "Retries granted, by service.",
              [](const ServiceState& st) { return st.retries_total.load(relaxed); });
}

}  // namespace

std::string render_metrics(const AdminSources& sources) {
  std::string text;
  text.reserve(8192);
  prometheus::Writer out(text);
  if (sources.server) render_proxy(out, *sources.server);
  if (sources.table) render_routing(out, *sources.table->load());
  if (sources.extra_metrics) sources.extra_metrics(out);
  return text;
}

}  // namespace sluice::proxy
