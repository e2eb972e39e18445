// The checks across fields and sections (validate.cpp), through parse_config
// and on structs built in code.
#include "tests/config/test_util.hpp"

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "config/validate.hpp"

using namespace sluice::config;
using namespace sluice::config::test;
using namespace std::chrono_literals;

TEST_CASE("listener names are unique and non-empty", "[config]") {
  json doc = minimal();
  doc["listeners"].push_back({{"name", "http"}, {"port", 8081}});
  only_error(doc, "listeners[1].name: duplicate listener name \"http\" (also listeners[0])");
  doc["listeners"][1]["name"] = "";
  only_error(doc, "listeners[1].name: required");
}

TEST_CASE("listener addresses are IP literals and binds do not clash", "[config]") {
  json doc = minimal();
  doc["listeners"][0]["address"] = "localhost";
  only_error(doc, "listeners[0].address: expected an IP address, got \"localhost\"");

  doc = minimal();
  doc["listeners"].push_back({{"name", "b"}, {"port", 8080}});
  only_error(doc, "listeners[1].port: 127.0.0.1:8080 clashes with listener \"http\" on 127.0.0.1:8080");
  doc["listeners"][1]["address"] = "127.0.0.2";
  CHECK(config_of(doc).listeners.size() == 2);  // same port, other address: fine
  doc["listeners"][1]["address"] = "0.0.0.0";
  only_error(doc, "listeners[1].port: 0.0.0.0:8080 clashes with listener \"http\" on 127.0.0.1:8080");
  doc["listeners"][1]["address"] = "::";
  only_error(doc, "listeners[1].port: [::]:8080 clashes with listener \"http\" on 127.0.0.1:8080");
  doc["listeners"][1]["address"] = "::1";
  CHECK(config_of(doc).listeners.size() == 2);  // IPv6 loopback vs IPv4 loopback: fine
}

TEST_CASE("the admin port must not clash with a listener", "[config]") {
  json doc = minimal();
  doc["admin"] = {{"port", 8080}};
  only_error(doc, "admin.port: 127.0.0.1:8080 clashes with listener \"http\"");
  doc["admin"]["enabled"] = false;
  CHECK(config_of(doc).admin.port == 8080);  // disabled admin binds nothing
  doc["admin"] = {{"address", "0.0.0.0"}, {"port", 8080}};
  only_error(doc, "admin.port: 0.0.0.0:8080 clashes with listener \"http\"");
  doc["admin"] = {{"address", "nowhere"}};
  only_error(doc, "admin.address: expected an IP address, got \"nowhere\"");
}

TEST_CASE("TLS files must be named and readable", "[config]") {
  const auto dir = std::filesystem::temp_directory_path() / ("sluice-validate-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string();
  std::ofstream(cert) << "x";

  json doc = minimal();
  doc["listeners"][0]["tls"] = {{"cert_file", cert}, {"key_file", cert}};
  CHECK(config_of(doc).listeners[0].tls->cert_file == cert);
  doc["listeners"][0]["tls"]["cert_file"] = "x";
  only_error(doc, "listeners[0].tls.cert_file: cannot read \"x\"");
  doc["listeners"][0]["tls"]["cert_file"] = "";
  only_error(doc, "listeners[0].tls.cert_file: expected a file name, got \"\"");
  doc["listeners"][0]["tls"]["cert_file"] = dir.string();
  only_error(doc, "listeners[0].tls.cert_file: cannot read \"" + dir.string() + "\"");
  doc["listeners"][0]["tls"] = {{"cert_file", cert}, {"key_file", cert}, {"client_ca_file", "/nonexistent/ca.pem"}};
  only_error(doc, "listeners[0].tls.client_ca_file: cannot read \"/nonexistent/ca.pem\"");

  doc = minimal();
  auto& tls = doc["services"][0]["clusters"][0]["tls"];
  tls = {{"ca_file", cert}, {"cert_file", cert}, {"key_file", cert}, {"server_name", "gw"}};
  CHECK(config_of(doc).services[0].clusters[0].tls->ca_file == cert);
  tls = {{"ca_file", "/nonexistent/ca.pem"}};
  only_error(doc, "services[0].clusters[0].tls.ca_file: cannot read \"/nonexistent/ca.pem\"");
  tls = {{"cert_file", cert}};
  only_error(doc, "services[0].clusters[0].tls.key_file: required with cert_file");
  tls = {{"key_file", cert}};
  only_error(doc, "services[0].clusters[0].tls.cert_file: required with key_file");
  tls = json::object();
  CHECK(config_of(doc).services[0].clusters[0].tls);  // system trust store, no client certificate
  std::filesystem::remove_all(dir);
}

TEST_CASE("services: names, unique ids, ports, clusters, endpoints", "[config]") {
  json doc = minimal();
  doc["services"].push_back(doc["services"][0]);
  only_error(doc, "services[1].name: duplicate service \"httpbin.httpbin\" (also services[0])");
  doc["services"][1]["namespace"] = "other";
  CHECK(config_of(doc).services.size() == 2);

  doc = minimal();
  doc["services"][0]["name"] = "http.bin";
  doc.erase("routes");
  only_error(doc, "services[0].name: expected letters, digits, '-' or '_', got \"http.bin\"");
  doc["services"][0]["name"] = "httpbin";
  doc["services"][0]["namespace"] = "";
  only_error(doc, "services[0].namespace: expected letters, digits, '-' or '_', got \"\"");

  doc = minimal();
  doc["services"][0]["ports"] = {8080, 8080};
  only_error(doc, "services[0].ports[1]: duplicate port 8080");

  doc = minimal();
  auto& clusters = doc["services"][0]["clusters"];
  clusters[0]["cluster"] = "default/default/local";
  only_error(doc, "services[0].clusters[0].cluster: expected a cluster key \"region/zone/group/name\", got \"default/default/local\"");
  clusters[0]["cluster"] = "a//c/d";
  only_error(doc, "services[0].clusters[0].cluster: expected a cluster key \"region/zone/group/name\", got \"a//c/d\"");
  clusters[0]["cluster"] = "a/b/c/d";
  clusters.push_back(clusters[0]);
  only_error(doc, "services[0].clusters[1].cluster: duplicate cluster \"a/b/c/d\"");
  clusters[1]["cluster"] = "a/b/c/e";
  clusters[1]["path_prefix"] = "httpbin";
  only_error(doc, "services[0].clusters[1].path_prefix: expected a path like \"/httpbin\" (leading '/', no trailing '/'), got \"httpbin\"");
  clusters[1]["path_prefix"] = "/httpbin/";
  CHECK(errors_of(doc).size() == 1);
  clusters[1]["path_prefix"] = "/httpbin";
  CHECK(config_of(doc).services[0].clusters[1].path_prefix == "/httpbin");

  doc = minimal();
  auto& eps = doc["services"][0]["clusters"][0]["endpoints"];
  eps = {"127.0.0.1:9001", "127.0.0.1:9001"};
  only_error(doc, "services[0].clusters[0].endpoints[1]: duplicate endpoint 127.0.0.1:9001");
  eps = {"bad host!:80"};
  only_error(doc, "services[0].clusters[0].endpoints[0].address: expected an IP address or host name, got \"bad host!\"");
  eps = json::array();
  CHECK(config_of(doc).services[0].clusters[0].endpoints.empty());  // a cluster with no endpoints yet
}

TEST_CASE("service policies: hashing, stickiness, targets, ejection, health checks", "[config]") {
  json doc = minimal();
  auto& s = doc["services"][0];
  s["load_balancer"] = "Hashing";
  s["hash"] = {{"on", "header"}};
  only_error(doc, "services[0].hash.name: required when hashing on a header");
  s["hash"] = {{"on", "cookie"}};
  only_error(doc, "services[0].hash.name: required when hashing on a cookie");
  s["hash"] = {{"on", "client_address"}};
  CHECK(config_of(doc).services[0].hash.on == HashOn::client_address);
  s.erase("hash");
  s.erase("load_balancer");

  s["session_sticky"] = {{"enabled", true}, {"cookie", "a b"}};
  only_error(doc, "services[0].session_sticky.cookie: expected a cookie name, got \"a b\"");
  s["session_sticky"] = {{"enabled", false}, {"cookie", ""}};
  CHECK_FALSE(config_of(doc).services[0].session_sticky.enabled);
  s.erase("session_sticky");

  s["policy"] = {{"lb_type", "FailOver"}, {"targets", {"a/b/c/d", "a/b/c/d"}}};
  only_error(doc, "services[0].policy.targets[1].cluster: duplicate target \"a/b/c/d\"");
  s["policy"]["targets"] = {"cluster-3"};
  only_error(doc, "services[0].policy.targets[0].cluster: expected a cluster key \"region/zone/group/name\", got \"cluster-3\"");
  s["policy"]["targets"] = {{{"cluster", "a/b/c"}, {"weight", 2}}};
  only_error(doc, "services[0].policy.targets[0].cluster: expected a cluster key \"region/zone/group/name\", got \"a/b/c\"");
  s.erase("policy");

  s["outlier_detection"] = {{"base_ejection_time", "1m"}, {"max_ejection_time", "30s"}};
  only_error(doc, "services[0].outlier_detection.max_ejection_time: must be at least base_ejection_time (1m)");
  s["outlier_detection"] = {{"base_ejection_time", "0"}};
  only_error(doc, "services[0].outlier_detection.base_ejection_time: expected a positive duration, got \"0\"");
  s.erase("outlier_detection");

  s["health_check"] = {{"interval", "1s"}, {"timeout", "1s"}};
  only_error(doc, "services[0].health_check.timeout: must be less than interval (1s), got \"1s\"");
  s["health_check"] = {{"timeout", "10s"}};
  only_error(doc, "services[0].health_check.timeout: must be less than interval (5s), got \"10s\"");
  s["health_check"] = {{"interval", "0"}, {"timeout", "0"}};
  const auto errors = errors_of(doc);
  CHECK(contains(errors, "services[0].health_check.interval: expected a positive duration, got \"0\""));
  CHECK(contains(errors, "services[0].health_check.timeout: expected a positive duration, got \"0\""));
  s["health_check"] = {{"path", "healthz"}};
  only_error(doc, "services[0].health_check.path: expected a path starting with '/', got \"healthz\"");
  s["health_check"] = {{"jitter", 2}};
  only_error(doc, "services[0].health_check.jitter: expected 0..1, got 2");
}

TEST_CASE("timeouts are positive; drain may be zero", "[config]") {
  json doc = minimal();
  for (const char* key : {"request_header", "idle", "connect", "response", "stream_idle"}) {
    doc["timeouts"] = {{key, "0"}};
    only_error(doc, std::string("timeouts.") + key + ": expected a positive duration, got \"0\"");
  }
  doc["timeouts"] = {{"drain", "0"}};
  CHECK(config_of(doc).timeouts.drain == 0ms);
  doc.erase("timeouts");
  doc["upstream"] = {{"idle_timeout", "0"}};
  only_error(doc, "upstream.idle_timeout: expected a positive duration, got \"0\"");
}

TEST_CASE("routes reference existing services and listeners", "[config]") {
  json doc = minimal();
  doc["routes"][0]["service"] = "foo.bar";
  only_error(doc, "routes[0].service: no service \"foo.bar\" (services are named \"name.namespace\")");
  doc["routes"][0]["service"] = "httpbin";  // the name alone is not an id
  only_error(doc, "routes[0].service: no service \"httpbin\" (services are named \"name.namespace\")");
  doc["routes"][0]["service"] = "";
  only_error(doc, "routes[0].service: required");

  doc = minimal();
  doc["routes"][0]["listener"] = "https";
  only_error(doc, "routes[0].listener: no listener \"https\"");
  doc["routes"][0]["listener"] = "http";
  CHECK(config_of(doc).routes[0].listener == "http");

  doc = minimal();
  doc["routes"][0]["hosts"] = json::array();
  only_error(doc, "routes[0].hosts: expected at least one host (\"*\" matches any)");
  doc["routes"][0]["hosts"] = {"a b"};
  only_error(doc, "routes[0].hosts[0]: expected a host name, \"name:port\" or \"*\", got \"a b\"");
  doc["routes"][0]["hosts"] = {"httpbin"};
  doc["routes"][0]["path"] = "api";
  only_error(doc, "routes[0].path: expected a path starting with '/', got \"api\"");

  doc = minimal();
  doc["routes"].push_back(doc["routes"][0]);
  only_error(doc, "routes[1].hosts[0]: same host and path as routes[0]: this route never matches");
  doc["routes"][1]["path"] = "/api";
  CHECK(config_of(doc).routes.size() == 2);

  doc = minimal();
  doc["routes"][0]["rewrite_from"] = "/httpbin";
  only_error(doc, "routes[0].rewrite_to: required with rewrite_from");
  doc["routes"][0]["rewrite_to"] = "x";
  only_error(doc, "routes[0].rewrite_to: expected a path starting with '/', got \"x\"");
}

TEST_CASE("top-level values: log level, cluster identity", "[config]") {
  json doc = minimal();
  doc["log_level"] = "verbose";
  only_error(doc, "log_level: expected one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", got \"verbose\"");
  for (const char* level : {"trace", "debug", "info", "warn", "error"}) {
    doc["log_level"] = level;
    CHECK(config_of(doc).log_level == level);
  }
  doc = minimal();
  doc["cluster"] = {{"zone", ""}};
  only_error(doc, "cluster.zone: expected a non-empty name without '/', got \"\"");
  doc["cluster"] = {{"name", "a/b"}};
  only_error(doc, "cluster.name: expected a non-empty name without '/', got \"a/b\"");
  doc = minimal();
  doc["kubernetes"] = {{"namespaces", {"ok", "not ok"}}};
  only_error(doc, "kubernetes.namespaces[1]: expected a namespace name, got \"not ok\"");
}

TEST_CASE("validate_config checks structs built in code", "[config]") {
  Config c;
  CHECK(validate_config(c).empty());
  c.listeners.push_back(Listener{"", "127.0.0.1", 0, Role::standalone, std::nullopt});
  Service s;
  s.name = "web";
  s.clusters.push_back(ClusterEndpoints{"default/default/default/local", "", {Endpoint{"127.0.0.1", 9000, 0, true, false}}, std::nullopt});
  c.services.push_back(s);
  Route r;
  r.hosts = {"*"};
  r.service = "web";
  c.routes.push_back(r);
  c.workers = 5000;
  c.limits.max_connections_per_worker = 0;
  c.limits.max_requests_per_worker = 2000000;
  const auto errors = validate_config(c);
  INFO(json(errors).dump());
  CHECK(errors == std::vector<std::string>{
                      "workers: expected 0..1024, got 5000",
                      "limits.max_connections_per_worker: expected 1..1000000, got 0",
                      "limits.max_requests_per_worker: expected 1..1000000, got 2000000",
                      "listeners[0].name: required",
                      "listeners[0].port: expected 1..65535, got 0",
                      "services[0].clusters[0].endpoints[0].weight: expected 1..1000000, got 0",
                      "routes[0].service: no service \"web\" (services are named \"name.namespace\")",
                  });
}

TEST_CASE("mesh_tls: one switch for mTLS between clusters", "[config]") {
  const auto dir = std::filesystem::temp_directory_path() / ("sluice-mesh-tls-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string pem = (dir / "x.pem").string();
  std::ofstream(pem) << "x";

  json doc = minimal();
  CHECK_FALSE(config_of(doc).mesh_tls);
  doc["mesh_tls"] = {{"ca_file", pem}, {"cert_file", pem}, {"key_file", pem}};
  const Config c = config_of(doc);
  REQUIRE(c.mesh_tls);
  CHECK(c.mesh_tls->ca_file == pem);
  CHECK(c.mesh_tls->cert_file == pem);
  CHECK(c.mesh_tls->key_file == pem);

  doc["mesh_tls"].erase("ca_file");
  only_error(doc, "mesh_tls.ca_file: required");
  doc["mesh_tls"]["ca_file"] = "/nonexistent/ca.pem";
  only_error(doc, "mesh_tls.ca_file: cannot read \"/nonexistent/ca.pem\"");
  doc["mesh_tls"]["ca_file"] = "";
  only_error(doc, "mesh_tls.ca_file: expected a file name, got \"\"");
  doc["mesh_tls"] = {{"ca_file", pem}, {"cert_file", pem}, {"key_file", pem}, {"enabled", true}};
  only_error(doc, "mesh_tls.enabled: unknown key");
  doc["mesh_tls"] = true;
  only_error(doc, "mesh_tls: expected an object, got true");
  std::filesystem::remove_all(dir);
}

TEST_CASE("plugin names: load_balancer_plugin and policy.plugin", "[config]") {
  json doc = minimal();
  doc["services"][0]["load_balancer_plugin"] = "lowest-latency";
  doc["services"][0]["policy"] = {{"plugin", "my.policy_2"}};
  const Config c = config_of(doc);
  CHECK(c.services[0].load_balancer_plugin == "lowest-latency");
  CHECK(c.services[0].policy.plugin == "my.policy_2");
  CHECK(config_of(minimal()).services[0].load_balancer_plugin.empty());  // default: the built-in policy

  doc["services"][0]["load_balancer_plugin"] = "bad name";
  only_error(doc, "services[0].load_balancer_plugin: expected a plugin name (letters, digits, '.', '_', '-'; at most 128), got \"bad name\"");
  doc["services"][0]["load_balancer_plugin"] = "ok";
  doc["services"][0]["policy"]["plugin"] = "a/b";
  only_error(doc, "services[0].policy.plugin: expected a plugin name (letters, digits, '.', '_', '-'; at most 128), got \"a/b\"");
}

TEST_CASE("a cluster's upstream protocol is one of http1, h2c, h2, auto, and h2/auto need TLS", "[config]") {
  json doc = minimal();
  auto& ce = doc["services"][0]["clusters"][0];
  CHECK(config_of(doc).services[0].clusters[0].protocol == sluice::config::UpstreamProtocol::http1);
  ce["protocol"] = "h2c";
  CHECK(config_of(doc).services[0].clusters[0].protocol == sluice::config::UpstreamProtocol::h2c);
  ce["protocol"] = "http2";
  CHECK(errors_of(doc).size() == 1);
  ce["protocol"] = "h2";
  only_error(doc, "services[0].clusters[0].protocol: \"h2\" needs TLS (a \"tls\" block here, or mesh_tls to a remote cluster); use \"h2c\" for plain HTTP/2");
  ce["protocol"] = "auto";
  only_error(doc, "services[0].clusters[0].protocol: \"auto\" needs TLS (a \"tls\" block here, or mesh_tls to a remote cluster); use \"h2c\" for plain HTTP/2");
}
