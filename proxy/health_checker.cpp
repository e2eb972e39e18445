#include "proxy/health_checker.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "proxy/logger.hpp"
#include "proxy/stream.hpp"
#include "routing/registry.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

namespace sluice::proxy {
namespace {

constexpr auto kTick = std::chrono::milliseconds(100);

}  // namespace

HealthChecker::HealthChecker(net::io_context& control, const routing::Table& table,
                             routing::EndpointRegistry& registry)
    : control_(control), table_(table), registry_(registry), timer_(control) {}

void HealthChecker::start() { tick(); }

void HealthChecker::stop() {
  stopped_ = true;
  timer_.cancel();
}

// Scans the current snapshot for endpoints due a probe; forgets those that left it.
void HealthChecker::tick() {
  if (stopped_) return;
  const auto snapshot = table_.load();
  const auto now = std::chrono::steady_clock::now();
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
      const auto& cluster = svc.clusters[ep.cluster];
      std::string target = cluster.path_prefix + hc.path;
      if (cluster.path_prefix.size() && hc.path == "/") target = cluster.path_prefix + "/";
      net::co_spawn(control_,
                    probe(std::string(ep.identity), std::string(ep.address), ep.port, std::move(target), hc.timeout, hc.healthy_threshold,
                          hc.unhealthy_threshold),
                    net::detached);
    }
  }
  std::erase_if(targets_, [](const auto& kv) { return !kv.second.seen && !kv.second.in_flight; });
  timer_.expires_after(kTick);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) tick();
  });
}

net::awaitable<void> HealthChecker::probe(std::string identity, std::string address, std::uint16_t port,
                                          std::string target, std::chrono::milliseconds timeout,
                                          std::uint32_t healthy_threshold, std::uint32_t unhealthy_threshold) {
  bool passed = false;
  std::string why;
  {
    beast::tcp_stream stream(control_);
    stream.expires_after(timeout);
    boost::system::error_code ec;
    auto ip = net::ip::make_address(address, ec);
    std::vector<tcp::endpoint> eps;
    if (!ec) {
      eps.emplace_back(ip, port);
    } else {
      tcp::resolver resolver(control_);
      auto [rec, results] = co_await resolver.async_resolve(address, std::to_string(port), use_nothrow);
      for (const auto& r : results) eps.push_back(r.endpoint());
      ec = rec;
    }
    if (!ec) std::tie(ec, std::ignore) = co_await stream.async_connect(eps, use_nothrow);
    if (!ec) {
      http::request<http::empty_body> req{http::verb::get, target, 11};
      req.set(http::field::host, address);
      req.set(http::field::user_agent, "sluice-health-check");
      req.set(http::field::connection, "close");
      std::tie(ec, std::ignore) = co_await http::async_write(stream, req, use_nothrow);
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    beast::flat_buffer buffer;
    if (!ec) std::tie(ec, std::ignore) = co_await http::async_read(stream, buffer, parser, use_nothrow);
    if (!ec) {
      const auto status = parser.get().result_int();
      passed = status >= 200 && status < 300;
      if (!passed) why = "status " + std::to_string(status);
    } else {
      why = ec == beast::error::timeout ? "timeout" : ec.message();
    }
    boost::system::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }
  ++probes_;
  if (!passed) {
    ++probe_failures_;
    log::debug("health check " + identity + " failed: " + why);
  }
  registry_.record_health_check(identity, passed, healthy_threshold, unhealthy_threshold,
                                std::chrono::steady_clock::now());
  if (auto it = targets_.find(identity); it != targets_.end()) it->second.in_flight = false;
}

}  // namespace sluice::proxy
