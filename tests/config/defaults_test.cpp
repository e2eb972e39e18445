// Every default of config.hpp, pinned: both in the structs and after parsing
// a document that leaves the key out (the parser must not invent its own).
#include "tests/config/test_util.hpp"

using namespace sluice::config;
using namespace sluice::config::test;
using namespace std::chrono_literals;

namespace {

void check_top_defaults(const Config& c) {
  CHECK(c.cluster.region == "default");
  CHECK(c.cluster.zone == "default");
  CHECK(c.cluster.group == "default");
  CHECK(c.cluster.name == "local");
  CHECK(c.cluster.key() == "default/default/default/local");
  CHECK(c.workers == 0);
  CHECK(c.log_level == "info");
  CHECK(c.limits.max_request_header_bytes == 60 * 1024);
  CHECK(c.limits.max_request_headers == 100);
  CHECK(c.limits.max_response_header_bytes == 60 * 1024);
  CHECK(c.limits.max_tunnels == 10000);
  CHECK(c.limits.max_connections_per_worker == 10000);
  CHECK(c.limits.max_requests_per_worker == 4096);
  CHECK(c.timeouts.request_header == 10s);
  CHECK(c.timeouts.idle == 60s);
  CHECK(c.timeouts.stream_idle == 5min);
  CHECK(c.timeouts.connect == 2s);
  CHECK(c.timeouts.response == 15s);
  CHECK(c.timeouts.drain == 10s);
  CHECK(c.upstream.max_idle_per_endpoint == 1024);
  CHECK(c.upstream.idle_timeout == 60s);
  CHECK(c.admin.enabled);
  CHECK(c.admin.address == "127.0.0.1");
  CHECK(c.admin.port == 9901);
  CHECK_FALSE(c.access_log.enabled);
  CHECK(c.access_log.path.empty());
  CHECK_FALSE(c.kubernetes.enabled);
  CHECK(c.kubernetes.kubeconfig.empty());
  CHECK(c.kubernetes.context.empty());
  CHECK(c.kubernetes.namespaces.empty());
  CHECK(c.kubernetes.coalesce == 50ms);
}

void check_service_defaults(const Service& s) {
  CHECK(s.ports.empty());
  CHECK(s.load_balancer == LoadBalancer::round_robin);
  CHECK(s.hash.on == HashOn::client_address);
  CHECK(s.hash.name.empty());
  CHECK_FALSE(s.session_sticky.enabled);
  CHECK(s.session_sticky.cookie == "sluice-sticky");
  CHECK(s.session_sticky.ttl == 0ms);
  CHECK(s.policy.lb_type == LbType::locality);
  CHECK(s.policy.targets.empty());
  CHECK(s.policy.overprovisioning == 1.4);
  CHECK(s.policy.panic_threshold == 0.5);
  CHECK(s.outlier_detection.enabled);
  CHECK(s.outlier_detection.consecutive_local_origin_failures == 1);
  CHECK(s.outlier_detection.consecutive_gateway_failures == 3);
  CHECK(s.outlier_detection.consecutive_failures == 5);
  CHECK(s.outlier_detection.probe_interval == 250ms);
  CHECK(s.outlier_detection.max_probe_interval == 1s);
  CHECK(s.outlier_detection.base_ejection_time == 30s);
  CHECK(s.outlier_detection.max_ejection_time == 300s);
  CHECK(s.outlier_detection.max_ejection_percent == 50);
  CHECK_FALSE(s.health_check.enabled);
  CHECK(s.health_check.path == "/");
  CHECK(s.health_check.interval == 5s);
  CHECK(s.health_check.timeout == 1s);
  CHECK(s.health_check.healthy_threshold == 2);
  CHECK(s.health_check.unhealthy_threshold == 3);
  CHECK(s.health_check.jitter == 0.1);
  CHECK(s.retry.max_retries == 2);
  CHECK(s.retry.budget_percent == 20);
  CHECK(s.retry.min_retry_concurrency == 3);
  CHECK(s.retry.retry_on_5xx);
  CHECK(s.retry.retry_on_timeout);
  CHECK(s.retry.max_pending_per_endpoint == 1024);
  CHECK(s.slow_start_window == 10s);
}

}  // namespace

TEST_CASE("struct defaults", "[config]") {
  check_top_defaults(Config{});
  Service s;
  CHECK(s.name_space == "default");
  check_service_defaults(s);
  Listener l;
  CHECK(l.address == "127.0.0.1");
  CHECK(l.role == Role::standalone);
  CHECK_FALSE(l.tls);
  Endpoint e;
  CHECK(e.weight == 1);
  CHECK(e.ready);
  CHECK_FALSE(e.terminating);
  Route r;
  CHECK(r.listener.empty());
  CHECK(r.path == "/");
  CHECK(r.path_match == PathMatch::prefix);
}

TEST_CASE("an empty document is a valid config with every default", "[config]") {
  const Config c = config_of(json::object());
  check_top_defaults(c);
  CHECK(c.listeners.empty());
  CHECK(c.services.empty());
  CHECK(c.routes.empty());
}

TEST_CASE("keys left out keep their defaults", "[config]") {
  const Config c = config_of(minimal());
  check_top_defaults(c);
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].address == "127.0.0.1");
  CHECK(c.listeners[0].role == Role::standalone);
  CHECK_FALSE(c.listeners[0].tls);
  REQUIRE(c.services.size() == 1);
  check_service_defaults(c.services[0]);
  REQUIRE(c.services[0].clusters.size() == 1);
  const auto& ce = c.services[0].clusters[0];
  CHECK(ce.path_prefix.empty());
  CHECK_FALSE(ce.tls);
  REQUIRE(ce.endpoints.size() == 1);
  CHECK(ce.endpoints[0].weight == 1);
  CHECK(ce.endpoints[0].ready);
  CHECK_FALSE(ce.endpoints[0].terminating);
  REQUIRE(c.routes.size() == 1);
  CHECK(c.routes[0].listener.empty());
  CHECK(c.routes[0].path == "/");
  CHECK(c.routes[0].path_match == PathMatch::prefix);
  CHECK(c.routes[0].host_rewrite.empty());
  CHECK(c.routes[0].rewrite_from.empty());
  CHECK(c.routes[0].rewrite_to.empty());
}

TEST_CASE("a service's namespace defaults to \"default\"", "[config]") {
  json doc = minimal();
  doc["services"][0].erase("namespace");
  doc["routes"][0]["service"] = "httpbin.default";
  const Config c = config_of(doc);
  CHECK(c.services[0].name_space == "default");
  CHECK(c.services[0].id() == "httpbin.default");
}

TEST_CASE("a service without routes, and no routes key at all, are fine", "[config]") {
  json doc = minimal();
  doc.erase("routes");
  const Config c = config_of(doc);
  CHECK(c.routes.empty());
  CHECK(c.services.size() == 1);
}
