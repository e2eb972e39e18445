// The admin endpoint (proxy/admin.hpp): Prometheus rendering (render_metrics), and each path answered over
// loopback by an Admin on its own io_context: /live, /ready (sync and drain), /stats, /routes, /explain,
// unknown paths and methods.
#include <catch2/catch.hpp>

#include "prometheus/writer.hpp"

#include <atomic>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <nlohmann/json.hpp>

#include "proxy/admin.hpp"
#include "proxy/server.hpp"
#include "tests/routing/fixtures.hpp"

using namespace sluice;
using namespace sluice::routing::test;

namespace {

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

// One service "web.default" with a local and a remote cluster, routed by host "web".
routing::Model web_model(const std::string& remote_key = kC1) {
  auto s = service("web", {cluster(kLocal, endpoints(2, "10.0.0.")), cluster(remote_key, endpoints(1, "10.1.0."))});
  s.policy.lb_type = config::LbType::active_active;
  s.policy.targets = {config::PolicyTarget{kLocal, std::nullopt}, config::PolicyTarget{remote_key, std::nullopt}};
  return model_of({s});
}

struct Routing {
  explicit Routing(const routing::Model& m) { table.publish(routing::build_snapshot(m, registry, routing::Clock::now())); }
  routing::EndpointRegistry registry;
  routing::Table table;
};

// An Admin on a loopback port of the system's choosing, served by a thread of its own.
struct AdminHarness {
  explicit AdminHarness(proxy::AdminSources sources) {
    sources.table = &routing.table;
    admin.emplace(control, std::move(sources));
    config::Admin cfg;
    cfg.address = "127.0.0.1";
    cfg.port = 0;
    REQUIRE(admin->listen(cfg).empty());
    port = admin->local_endpoint().port();
    admin->start();
    thread = std::thread([this] { control.run(); });
  }
  ~AdminHarness() {
    net::post(control, [this] { admin->close(); });
    control.stop();
    thread.join();
  }

  // One request on a fresh connection: (status, content type, body).
  struct Answer {
    unsigned status;
    std::string type;
    std::string body;
  };
  Answer request(const std::string& target, http::verb method = http::verb::get) {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "admin");
    req.keep_alive(false);
    http::write(s, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(s, buffer, res);
    return {res.result_int(), std::string(res[http::field::content_type]), res.body()};
  }

  Routing routing{web_model()};
  net::io_context control{1};
  std::optional<proxy::Admin> admin;
  std::uint16_t port = 0;
  std::thread thread;
};

}  // namespace

TEST_CASE("admin: Prometheus text of the routing table, labels escaped", "[proxy]") {
  // A cluster key with the characters the exposition format escapes (keys come from Kubernetes objects).
  const std::string odd_key = "region/zone/\"quoted\"/back\\slash";
  Routing r(web_model(odd_key));
  for (const auto& ep : r.table.load()->services[0].endpoints) {
    if (ep.address == "10.0.0.1") ep.state->requests_total.store(7);
    if (ep.address == "10.0.0.2") ep.state->requests_total.store(3);
    if (ep.address == "10.0.0.2") ep.state->failures_total.store(2);
  }

  proxy::AdminSources src;
  src.table = &r.table;
  src.extra_metrics = [](prometheus::Writer& out) {
    out.family("extra_metric", prometheus::Type::gauge, "A metric of the embedding program's.");
    out.sample(42);
  };
  const auto text = proxy::render_metrics(src);

  CHECK(text.find("# TYPE sluice_upstream_requests_total counter\n") != std::string::npos);
  CHECK(sample(text, "sluice_upstream_requests_total{service=\"web.default\",cluster=\"" + kLocal + "\"}") == 10);
  CHECK(sample(text, "sluice_upstream_failures_total{service=\"web.default\",cluster=\"" + kLocal + "\"}") == 2);
  CHECK(sample(text, "sluice_upstream_requests_total{service=\"web.default\",cluster=\"region/zone/\\\"quoted\\\"/back\\\\slash\"}") == 0);
  CHECK(sample(text, "sluice_snapshot_generation") == 1);
  CHECK(sample(text, "sluice_snapshot_stale") == 0);
  CHECK(sample(text, "sluice_endpoints_ejected{service=\"web.default\",cluster=\"" + kLocal + "\"}") == 0);
  CHECK(sample(text, "sluice_ejections_total{service=\"web.default\",reason=\"local_origin\"}") == 0);
  CHECK(sample(text, "extra_metric") == 42);
  // Without a server, no proxy counters.
  CHECK_FALSE(sample(text, "sluice_requests_total"));
  // Every sample's family is declared before it.
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line.starts_with("extra_metric")) continue;
    const auto name = line.substr(0, line.find_first_of("{ "));
    CHECK(text.find("# TYPE " + name + " ") < text.find(line));
  }
}

TEST_CASE("admin: Prometheus text of the workers' counters, summed", "[proxy]") {
  Routing r(web_model());
  config::Config cfg;
  cfg.workers = 2;
  proxy::Server server(cfg, r.table);  // never started: its workers only hold counters here
  server.workers()[0]->stats().requests.add(5);
  server.workers()[1]->stats().requests.add(2);
  server.workers()[1]->stats().responses_by_class[5].add(1);
  server.workers()[0]->stats().active_requests.inc();

  proxy::AdminSources src;
  src.server = &server;
  const auto text = proxy::render_metrics(src);
  CHECK(sample(text, "sluice_requests_total") == 7);
  CHECK(sample(text, "sluice_responses_total{class=\"5xx\"}") == 1);
  CHECK(sample(text, "sluice_responses_total{class=\"2xx\"}") == 0);
  CHECK(sample(text, "sluice_requests_active") == 1);
  CHECK_FALSE(sample(text, "sluice_snapshot_generation"));  // no table given
  server.workers()[0]->stats().active_requests.dec();
}

TEST_CASE("admin: /live, /ready through sync and drain, unknown paths and methods", "[proxy]") {
  std::atomic<bool> synced{false};
  proxy::AdminSources src;
  src.synced = [&synced] { return synced.load(); };
  AdminHarness h(src);

  CHECK(h.request("/live").status == 200);
  auto ready = h.request("/ready");
  CHECK(ready.status == 503);
  CHECK(ready.body == "not synced yet\n");
  synced = true;  // read on the admin's thread when the next request arrives
  ready = h.request("/ready");
  CHECK(ready.status == 200);
  CHECK(ready.body == "ready\n");
  h.admin->set_draining();  // any thread
  ready = h.request("/ready");
  CHECK(ready.status == 503);
  CHECK(ready.body == "draining\n");

  CHECK(h.request("/nope").status == 404);
  CHECK(h.request("/").body.find("/explain") != std::string::npos);
  CHECK(h.request("/ready", http::verb::post).status == 405);
  CHECK(h.request("/stats").type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(sample(h.request("/metrics").body, "sluice_snapshot_generation") == 1);
}

TEST_CASE("admin: /routes and /explain answer JSON about the current table", "[proxy]") {
  proxy::AdminSources src;
  src.extra_status = [](nlohmann::json& j) { j["discovery"] = {{"synced", true}}; };
  src.last_failover = [](const std::string& id) -> nlohmann::json {
    return id == "web.default" ? nlohmann::json{{"event", "something happened"}} : nlohmann::json(nullptr);
  };
  AdminHarness h(src);

  auto routes = h.request("/routes");
  CHECK(routes.status == 200);
  CHECK(routes.type == "application/json");
  const auto rj = nlohmann::json::parse(routes.body);
  CHECK(rj["generation"] == 1);
  REQUIRE(rj["services"].size() == 1);
  CHECK(rj["services"][0]["id"] == "web.default");
  CHECK(rj["discovery"]["synced"] == true);

  CHECK(h.request("/explain").status == 400);  // host= is required
  auto explained = h.request("/explain?host=web&path=/x&method=HEAD");
  CHECK(explained.status == 200);
  const auto ej = nlohmann::json::parse(explained.body);
  CHECK(ej["request"]["host"] == "web");
  CHECK(ej["request"]["path"] == "/x");
  CHECK(ej["request"]["method"] == "HEAD");
  CHECK(ej["snapshot"]["generation"] == 1);
  CHECK(ej["service"]["id"] == "web.default");
  CHECK(ej["next"]["endpoint"].get<std::string>().starts_with("10."));
  CHECK(ej["last_failover_event"]["event"] == "something happened");
  CHECK(ej["discovery"]["synced"] == true);

  const auto none = nlohmann::json::parse(h.request("/explain?host=nowhere").body);
  CHECK(none["next"]["answer"] == "no_route (404)");
}
