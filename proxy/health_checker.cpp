#include "proxy/health_checker.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "log/logger.hpp"
#include "proxy/stream.hpp"
#include "proxy/upstream_connect.hpp"
#include "routing/health.hpp"
#include "routing/registry.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

namespace sluice::proxy {
namespace {

// How often the snapshot is scanned for due checks and probes: a quarter of the first probe delay.
constexpr auto kTick = std::chrono::milliseconds(50);

// The request target of a check or probe of `ep`: the cluster's path prefix (a remote gateway routes by
// it) before the path.
std::string target_of(const routing::ClusterEntry& cluster, const std::string& path) {
  if (cluster.path_prefix.empty()) return path;
  if (path == "/") return cluster.path_prefix + "/";
  return cluster.path_prefix + path;
}

}  // namespace

HealthChecker::HealthChecker(net::io_context& control, const routing::Table& table,
                             routing::EndpointRegistry& registry, std::optional<config::MeshTls> mesh_tls)
    : control_(control), table_(table), registry_(registry), mesh_tls_(std::move(mesh_tls)), timer_(control) {}

void HealthChecker::start() { tick(); }

void HealthChecker::stop() {
  stopped_ = true;
  timer_.cancel();
}

void HealthChecker::tick() {
  if (stopped_) return;
  const auto snapshot = table_.load();
  const auto now = std::chrono::steady_clock::now();
  schedule_checks(snapshot, now);
  schedule_ejection_probes(snapshot, now);
  timer_.expires_after(kTick);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

// Periodic health checks of services that configure them; forgets endpoints that left the snapshot.
void HealthChecker::schedule_checks(const std::shared_ptr<const routing::Snapshot>& snapshot,
                                    std::chrono::steady_clock::time_point now) {
  for (auto& [id, t] : targets_) t.seen = false;
  for (const auto& svc : snapshot->services) {
    const auto& hc = svc.health_check;
    if (!hc.enabled) continue;
    for (const auto& ep : svc.endpoints) {
      auto [it, fresh] = targets_.try_emplace(std::string(ep.identity));
      auto& t = it->second;
      t.seen = true;
      if (fresh) {
        // Spread the first probes over one interval instead of firing them all at once.
        std::uniform_int_distribution<long long> spread(0, hc.interval.count());
        t.next_due = now + std::chrono::milliseconds(spread(rng_));
      }
      if (t.in_flight || now < t.next_due) continue;
      std::uniform_real_distribution<double> jitter(0, hc.jitter);
      t.next_due = now + hc.interval +
                   std::chrono::milliseconds(static_cast<long long>(hc.interval.count() * jitter(rng_)));
      t.in_flight = true;
      net::co_spawn(control_,
                    check(std::string(ep.identity), probe_for(svc, ep, true), hc.healthy_threshold,
                          hc.unhealthy_threshold),
                    net::detached);
    }
  }
  std::erase_if(targets_, [](const auto& kv) { return !kv.second.seen && !kv.second.in_flight; });
}

// Probes of ejected endpoints whose next probe is due (routing keeps the schedule).
void HealthChecker::schedule_ejection_probes(const std::shared_ptr<const routing::Snapshot>& snapshot,
                                             std::chrono::steady_clock::time_point now) {
  const auto ticks = routing::to_ticks(now);
  for (const auto& svc : snapshot->services) {
    for (const auto& ep : svc.endpoints) {
      if (!routing::probe_due(ep, ticks)) continue;
      auto [it, fresh] = probing_.try_emplace(std::string(ep.identity), true);
      if (!fresh) continue;  // one probe at a time per endpoint
      const bool http = routing::probe_kind(svc, ep) == routing::ProbeKind::http;
      net::co_spawn(control_, probe_ejected(snapshot, svc.index, ep.index, probe_for(svc, ep, http)),
                    net::detached);
    }
  }
}

HealthChecker::Probe HealthChecker::probe_for(const routing::ServiceEntry& svc, const routing::EndpointEntry& ep,
                                              bool http) const {
  const auto& cluster = svc.clusters[ep.cluster];
  Probe p;
  p.address = ep.address;
  p.port = ep.port;
  p.tls = upstream_tls(cluster, mesh_tls_);
  p.http = http;
  p.timeout = svc.health_check.timeout;
  // Without a configured check, any answer that is not a 5xx shows the endpoint serves again.
  p.any_non_5xx = !svc.health_check.enabled;
  p.target = target_of(cluster, svc.health_check.enabled ? svc.health_check.path : std::string("/"));
  return p;
}

net::awaitable<HealthChecker::Verdict> HealthChecker::run(Probe probe) {
  Verdict v;
  std::shared_ptr<ssl::context> ctx;
  if (probe.tls) {
    ctx = tls_.get(*probe.tls, v.why);
    if (!ctx) co_return v;
  }
  Stream stream = ctx ? Stream(tcp::socket(control_), ctx) : Stream(tcp::socket(control_));
  const auto deadline = std::chrono::steady_clock::now() + probe.timeout;
  stream.transport().expires_at(deadline);  // the connect's
  std::vector<tcp::endpoint> eps;
  auto ec = co_await resolve_upstream(control_, probe.address, probe.port, eps);
  if (!ec) std::tie(ec, std::ignore) = co_await stream.transport().async_connect(eps, use_nothrow);
  stream.expires_at(deadline);  // the rest's (TLS keeps its own)
  if (!ec && stream.tls()) {
    prepare_client_tls(*stream.tls(), *probe.tls, probe.address);
    std::tie(ec) = co_await stream.tls()->async_handshake(ssl::stream_base::client, use_nothrow);
  }
  if (ec) {
    v.why = ec == beast::error::timeout ? "connect timeout" : ec.message();
    co_return v;
  }
  v.reachable = true;
  if (!probe.http) {
    v.passed = true;
  } else {
    http::request<http::empty_body> req{http::verb::get, probe.target, 11};
    req.set(http::field::host, probe.address);
    req.set(http::field::user_agent, "sluice-health-check");
    req.set(http::field::connection, "close");
    std::tie(ec, std::ignore) = co_await stream.visit([&](auto& s) { return http::async_write(s, req, use_nothrow); });
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    beast::flat_buffer buffer;
    if (!ec) {
      std::tie(ec, std::ignore) =
          co_await stream.visit([&](auto& s) { return http::async_read(s, buffer, parser, use_nothrow); });
    }
    if (ec) {
      v.why = ec == beast::error::timeout ? "timeout" : ec.message();
    } else {
      const auto status = parser.get().result_int();
      v.passed = probe.any_non_5xx ? status < 500 : status >= 200 && status < 300;
      if (!v.passed) v.why = "status " + std::to_string(status);
    }
  }
  boost::system::error_code ignored;
  stream.transport().socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return v;
}

net::awaitable<void> HealthChecker::check(std::string identity, Probe probe, std::uint32_t healthy_threshold,
                                          std::uint32_t unhealthy_threshold) {
  const Verdict v = co_await run(std::move(probe));
  ++probes_;
  if (!v.passed) {
    ++probe_failures_;
    log::debug("health check " + identity + " failed: " + v.why);
  }
  registry_.record_health_check(identity, v.passed, healthy_threshold, unhealthy_threshold,
                                std::chrono::steady_clock::now());
  if (auto it = targets_.find(identity); it != targets_.end()) it->second.in_flight = false;
}

net::awaitable<void> HealthChecker::probe_ejected(std::shared_ptr<const routing::Snapshot> snapshot,
                                                  std::uint32_t service, std::uint32_t endpoint, Probe probe) {
  const auto& svc = snapshot->services[service];
  const auto& ep = svc.endpoints[endpoint];
  const std::string what = (probe.http ? "http probe of " : "connect probe of ") + std::string(ep.identity);
  const Verdict v = co_await run(std::move(probe));
  ++ejection_probes_;
  const auto now = routing::to_ticks(std::chrono::steady_clock::now());
  if (routing::record_probe(svc, ep, v.passed, v.reachable, now)) {
    log::info("outlier detection: " + std::string(ep.identity) + " back in rotation (" + what + " passed)");
  } else if (!v.passed) {
    log::debug(what + " failed: " + v.why);
  }
  probing_.erase(std::string(ep.identity));
}

}  // namespace sluice::proxy
