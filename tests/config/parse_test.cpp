// JSON -> Config: every key read, every reader error path (types, ranges,
// required keys, enums, unknown keys, malformed JSON), endpoint forms, files.
#include "tests/config/test_util.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include <unistd.h>

using namespace sluice::config;
using namespace sluice::config::test;
using namespace std::chrono_literals;

namespace {

// Every key of the schema, none at its default.
const char* const everything = R"({
  "cluster": {"region": "eu", "zone": "eu-1a", "group": "g1", "name": "cluster-2"},
  "workers": 4,
  "log_level": "debug",
  "limits": {"max_request_header_bytes": 8192, "max_request_headers": 50, "max_response_header_bytes": 16384, "max_tunnels": 7,
             "max_connections_per_worker": 500, "max_requests_per_worker": 300},
  "timeouts": {"request_header": "5s", "idle": "2m", "connect": "250ms", "response": "1h", "stream_idle": "90s", "drain": "0"},
  "upstream": {"max_idle_per_endpoint": 8, "idle_timeout": "30s"},
  "admin": {"enabled": false, "address": "::1", "port": 19901},
  "access_log": {"enabled": true, "path": "/tmp/access.log"},
  "kubernetes": {"enabled": true, "kubeconfig": "/k/config", "context": "c2", "namespaces": ["httpbin", "curl"], "coalesce": "100ms"},
  "listeners": [
    {"name": "outbound", "address": "127.0.0.2", "port": 15001, "role": "sidecar",
     "tls": {"cert_file": "/dev/null", "key_file": "/dev/null", "client_ca_file": "/dev/null"}},
    {"name": "gw", "address": "::", "port": 15443, "role": "gateway"}
  ],
  "services": [{
    "name": "httpbin", "namespace": "httpbin", "ports": [8080, 8443],
    "clusters": [
      {"cluster": "eu/eu-1a/g1/cluster-2", "endpoints": ["10.0.0.1:8080", {"address": "10.0.0.2", "port": 8081, "weight": 3, "ready": false, "terminating": true}]},
      {"cluster": "eu/eu-1b/g1/cluster-3", "path_prefix": "/httpbin", "endpoints": ["gw.cluster-3.example:443"],
       "tls": {"ca_file": "/dev/null", "cert_file": "/dev/null", "key_file": "/dev/null", "server_name": "gw.cluster-3"}}
    ],
    "load_balancer": "HashingLoadBalancer",
    "hash": {"on": "header", "name": "x-user"},
    "session_sticky": {"enabled": true, "cookie": "pin", "ttl": "1h30m"},
    "policy": {"lb_type": "FailOver", "targets": ["eu/eu-1b/g1/cluster-3", {"cluster": "us/us-1/g1/cluster-4", "weight": 20}],
               "overprovisioning": 0, "panic_threshold": 0.25},
    "outlier_detection": {"enabled": false, "consecutive_local_origin_failures": 2, "consecutive_gateway_failures": 4, "consecutive_failures": 3, "probe_interval": "100ms", "max_probe_interval": "3s", "base_ejection_time": "10s", "max_ejection_time": "1m", "max_ejection_percent": 50},
    "health_check": {"enabled": true, "path": "/healthz", "interval": "2s", "timeout": "500ms", "healthy_threshold": 1, "unhealthy_threshold": 2, "jitter": 0},
    "retry": {"max_retries": 5, "budget_percent": 50, "min_retry_concurrency": 0, "retry_on_5xx": false, "retry_on_timeout": false, "max_pending_per_endpoint": 10},
    "tunnel": {"idle_timeout": "5m", "max_lifetime": "1h"},
    "slow_start_window": "0"
  }],
  "mesh_tls": {"ca_file": "/dev/null", "cert_file": "/dev/null", "key_file": "/dev/null"},
  "routes": [{"listener": "gw", "hosts": ["httpbin.httpbin:8080", "*"], "path": "/httpbin", "path_match": "Exact",
              "service": "httpbin.httpbin", "host_rewrite": "httpbin", "rewrite_from": "/httpbin", "rewrite_to": "/"}]
})";

}  // namespace

TEST_CASE("every key is read into its field", "[config]") {
  const Config c = config_of(json::parse(everything));
  CHECK(c.cluster.key() == "eu/eu-1a/g1/cluster-2");
  CHECK(c.workers == 4);
  CHECK(c.log_level == "debug");
  CHECK(c.limits.max_request_header_bytes == 8192);
  CHECK(c.limits.max_request_headers == 50);
  CHECK(c.limits.max_response_header_bytes == 16384);
  CHECK(c.limits.max_tunnels == 7);
  CHECK(c.limits.max_connections_per_worker == 500);
  CHECK(c.limits.max_requests_per_worker == 300);
  CHECK(c.timeouts.request_header == 5s);
  CHECK(c.timeouts.idle == 2min);
  CHECK(c.timeouts.stream_idle == 90s);
  CHECK(c.timeouts.connect == 250ms);
  CHECK(c.timeouts.response == 1h);
  CHECK(c.timeouts.drain == 0ms);
  CHECK(c.upstream.max_idle_per_endpoint == 8);
  CHECK(c.upstream.idle_timeout == 30s);
  CHECK_FALSE(c.admin.enabled);
  CHECK(c.admin.address == "::1");
  CHECK(c.admin.port == 19901);
  CHECK(c.access_log.enabled);
  CHECK(c.access_log.path == "/tmp/access.log");
  CHECK(c.kubernetes.enabled);
  CHECK(c.kubernetes.kubeconfig == "/k/config");
  CHECK(c.kubernetes.context == "c2");
  CHECK(c.kubernetes.namespaces == std::vector<std::string>{"httpbin", "curl"});
  CHECK(c.kubernetes.coalesce == 100ms);

  REQUIRE(c.listeners.size() == 2);
  CHECK(c.listeners[0].name == "outbound");
  CHECK(c.listeners[0].address == "127.0.0.2");
  CHECK(c.listeners[0].port == 15001);
  CHECK(c.listeners[0].role == Role::sidecar);
  REQUIRE(c.listeners[0].tls);
  CHECK(c.listeners[0].tls->cert_file == "/dev/null");
  CHECK(c.listeners[0].tls->key_file == "/dev/null");
  CHECK(c.listeners[0].tls->client_ca_file == "/dev/null");
  CHECK(c.listeners[1].address == "::");
  CHECK(c.listeners[1].role == Role::gateway);

  REQUIRE(c.services.size() == 1);
  const Service& s = c.services[0];
  CHECK(s.id() == "httpbin.httpbin");
  CHECK(s.ports == std::vector<std::uint16_t>{8080, 8443});
  REQUIRE(s.clusters.size() == 2);
  CHECK(s.clusters[0].cluster == "eu/eu-1a/g1/cluster-2");
  REQUIRE(s.clusters[0].endpoints.size() == 2);
  CHECK(s.clusters[0].endpoints[0].address == "10.0.0.1");
  CHECK(s.clusters[0].endpoints[0].port == 8080);
  const Endpoint& e = s.clusters[0].endpoints[1];
  CHECK(e.address == "10.0.0.2");
  CHECK(e.port == 8081);
  CHECK(e.weight == 3);
  CHECK_FALSE(e.ready);
  CHECK(e.terminating);
  CHECK(s.clusters[1].path_prefix == "/httpbin");
  CHECK(s.clusters[1].endpoints[0].address == "gw.cluster-3.example");
  CHECK(s.clusters[1].endpoints[0].port == 443);
  REQUIRE(s.clusters[1].tls);
  CHECK(s.clusters[1].tls->ca_file == "/dev/null");
  CHECK(s.clusters[1].tls->cert_file == "/dev/null");
  CHECK(s.clusters[1].tls->key_file == "/dev/null");
  CHECK(s.clusters[1].tls->server_name == "gw.cluster-3");
  REQUIRE(c.mesh_tls);
  CHECK(c.mesh_tls->ca_file == "/dev/null");
  CHECK(s.load_balancer == LoadBalancer::hashing);
  CHECK(s.hash.on == HashOn::header);
  CHECK(s.hash.name == "x-user");
  CHECK(s.session_sticky.enabled);
  CHECK(s.session_sticky.cookie == "pin");
  CHECK(s.session_sticky.ttl == 90min);
  CHECK(s.policy.lb_type == LbType::fail_over);
  REQUIRE(s.policy.targets.size() == 2);
  CHECK(s.policy.targets[0].cluster == "eu/eu-1b/g1/cluster-3");
  CHECK_FALSE(s.policy.targets[0].weight);
  CHECK(s.policy.targets[1].cluster == "us/us-1/g1/cluster-4");
  CHECK(s.policy.targets[1].weight == 20u);
  CHECK(s.policy.overprovisioning == 0);
  CHECK(s.policy.panic_threshold == 0.25);
  CHECK_FALSE(s.outlier_detection.enabled);
  CHECK(s.outlier_detection.consecutive_failures == 3);
  CHECK(s.outlier_detection.consecutive_local_origin_failures == 2);
  CHECK(s.outlier_detection.consecutive_gateway_failures == 4);
  CHECK(s.outlier_detection.probe_interval == 100ms);
  CHECK(s.outlier_detection.max_probe_interval == 3s);
  CHECK(s.outlier_detection.base_ejection_time == 10s);
  CHECK(s.outlier_detection.max_ejection_time == 1min);
  CHECK(s.outlier_detection.max_ejection_percent == 50);
  CHECK(s.health_check.enabled);
  CHECK(s.health_check.path == "/healthz");
  CHECK(s.health_check.interval == 2s);
  CHECK(s.health_check.timeout == 500ms);
  CHECK(s.health_check.healthy_threshold == 1);
  CHECK(s.health_check.unhealthy_threshold == 2);
  CHECK(s.health_check.jitter == 0);
  CHECK(s.retry.max_retries == 5);
  CHECK(s.retry.budget_percent == 50);
  CHECK(s.retry.min_retry_concurrency == 0);
  CHECK_FALSE(s.retry.retry_on_5xx);
  CHECK_FALSE(s.retry.retry_on_timeout);
  CHECK(s.tunnel.idle_timeout == 5min);
  CHECK(s.tunnel.max_lifetime == 1h);
  CHECK(s.retry.max_pending_per_endpoint == 10);
  CHECK(s.slow_start_window == 0ms);

  REQUIRE(c.routes.size() == 1);
  const Route& r = c.routes[0];
  CHECK(r.listener == "gw");
  CHECK(r.hosts == std::vector<std::string>{"httpbin.httpbin:8080", "*"});
  CHECK(r.path == "/httpbin");
  CHECK(r.path_match == PathMatch::exact);
  CHECK(r.service == "httpbin.httpbin");
  CHECK(r.host_rewrite == "httpbin");
  CHECK(r.rewrite_from == "/httpbin");
  CHECK(r.rewrite_to == "/");
}

TEST_CASE("the local cluster may be written as its key", "[config]") {
  json doc = minimal();
  doc["cluster"] = "default/default/default/cluster-1";
  CHECK(config_of(doc).cluster.name == "cluster-1");
  doc["cluster"] = "default/default/cluster-1";
  only_error(doc, "cluster: expected a cluster key \"region/zone/group/name\", got \"default/default/cluster-1\"");
  doc["cluster"] = 5;
  only_error(doc, "cluster: expected an object, got 5");
}

TEST_CASE("unknown keys are errors at every level, with a suggestion for typos", "[config]") {
  json doc = minimal();
  doc["services"][0]["lodbalancer"] = "Random";
  only_error(doc, "services[0].lodbalancer: unknown key (did you mean \"load_balancer\"?)");

  doc = minimal();
  doc["listners"] = json::array();
  only_error(doc, "listners: unknown key (did you mean \"listeners\"?)");

  doc = minimal();
  doc["timeouts"] = {{"conect", "1s"}};
  only_error(doc, "timeouts.conect: unknown key (did you mean \"connect\"?)");

  doc = minimal();
  doc["services"][0]["clusters"][0]["endpoints"][0] = {{"address", "127.0.0.1"}, {"port", 1}, {"zzz", 1}};
  only_error(doc, "services[0].clusters[0].endpoints[0].zzz: unknown key");

  doc = minimal();
  doc["routes"][0]["prefix"] = "/x";
  doc["listeners"][0]["tls_enabled"] = true;
  const auto errors = errors_of(doc);
  CHECK(errors.size() == 2);
  CHECK(contains(errors, "listeners[0].tls_enabled: unknown key"));
  CHECK(contains(errors, "routes[0].prefix: unknown key"));
}

TEST_CASE("the JSON spelling of Service::name_space is \"namespace\"", "[config]") {
  json doc = minimal();
  doc["services"][0]["name_space"] = "x";
  only_error(doc, "services[0].name_space: unknown key (did you mean \"namespace\"?)");
}

TEST_CASE("a long string is cut in a message at a character's start, not inside one", "[config]") {
  json doc = minimal();
  // 59 ASCII bytes, then two-byte characters: byte 60 is the second half of one.
  doc["listeners"][0]["port"] = std::string(59, 'p') + "\u00df\u00df\u00df";
  only_error(doc, "listeners[0].port: expected an integer, got \"" + std::string(59, 'p') + "...\"");
  doc["listeners"][0]["port"] = std::string(58, 'p') + "\u00df\u00df\u00df";
  only_error(doc, "listeners[0].port: expected an integer, got \"" + std::string(58, 'p') + "\u00df...\"");
}

TEST_CASE("wrong types name the expected type", "[config]") {
  json doc = minimal();
  doc["listeners"][0]["port"] = "8080";
  only_error(doc, "listeners[0].port: expected an integer, got \"8080\"");
  doc["listeners"][0]["port"] = 80.5;
  only_error(doc, "listeners[0].port: expected an integer, got 80.5");
  doc = minimal();
  doc["listeners"][0]["name"] = 7;
  only_error(doc, "listeners[0].name: expected a string, got 7");
  doc = minimal();
  doc["admin"] = {{"enabled", "yes"}};
  only_error(doc, "admin.enabled: expected true or false, got \"yes\"");
  doc = minimal();
  doc["listeners"] = {{"name", "x"}};
  only_error(doc, "listeners: expected an array, got an object");
  doc = minimal();
  doc["routes"][0] = "httpbin";
  only_error(doc, "routes[0]: expected an object, got \"httpbin\"");
  doc = minimal();
  doc["limits"] = json::array();
  only_error(doc, "limits: expected an object, got an array");
  doc = minimal();
  doc["services"][0]["policy"] = {{"overprovisioning", "high"}};
  only_error(doc, "services[0].policy.overprovisioning: expected a number, got \"high\"");
  doc = minimal();
  doc["routes"][0]["hosts"] = {"a", 1};
  only_error(doc, "routes[0].hosts[1]: expected a string, got 1");
  doc = minimal();
  doc["access_log"] = {{"path", nullptr}};
  only_error(doc, "access_log.path: expected a string, got null");
}

TEST_CASE("integer and number ranges", "[config]") {
  json doc = minimal();
  doc["listeners"][0]["port"] = 70000;
  only_error(doc, "listeners[0].port: expected 1..65535, got 70000");
  doc["listeners"][0]["port"] = 0;
  only_error(doc, "listeners[0].port: expected 1..65535, got 0");
  doc["listeners"][0]["port"] = -1;
  only_error(doc, "listeners[0].port: expected 1..65535, got -1");
  doc["listeners"][0]["port"] = 18446744073709551615ull;
  only_error(doc, "listeners[0].port: expected 1..65535, got 18446744073709551615");

  doc = minimal();
  doc["workers"] = 1025;
  only_error(doc, "workers: expected 0..1024, got 1025");
  doc = minimal();
  doc["services"][0]["retry"] = {{"budget_percent", 101}};
  only_error(doc, "services[0].retry.budget_percent: expected 0..100, got 101");
  doc = minimal();
  doc["services"][0]["outlier_detection"] = {{"max_ejection_percent", -0.5}};
  only_error(doc, "services[0].outlier_detection.max_ejection_percent: expected 0..100, got -0.5");
  doc = minimal();
  doc["services"][0]["outlier_detection"] = {{"consecutive_failures", 0}};
  only_error(doc, "services[0].outlier_detection.consecutive_failures: expected 1..1000000, got 0");
  doc = minimal();
  doc["services"][0]["health_check"] = {{"healthy_threshold", 0}};
  only_error(doc, "services[0].health_check.healthy_threshold: expected 1..1000000, got 0");
  doc = minimal();
  doc["services"][0]["health_check"] = {{"unhealthy_threshold", 0}};
  only_error(doc, "services[0].health_check.unhealthy_threshold: expected 1..1000000, got 0");
  doc = minimal();
  doc["services"][0]["policy"] = {{"overprovisioning", -1}};
  only_error(doc, "services[0].policy.overprovisioning: expected 0..100, got -1");
  doc = minimal();
  doc["services"][0]["policy"] = {{"panic_threshold", 1.5}};
  only_error(doc, "services[0].policy.panic_threshold: expected 0..1, got 1.5");
  doc = minimal();
  doc["services"][0]["ports"] = {8080, 0};
  only_error(doc, "services[0].ports[1]: expected 1..65535, got 0");
  doc = minimal();
  doc["services"][0]["clusters"][0]["endpoints"][0] = {{"address", "127.0.0.1"}, {"port", 9001}, {"weight", 0}};
  only_error(doc, "services[0].clusters[0].endpoints[0].weight: expected 1..1000000, got 0");
  doc = minimal();
  doc["services"][0]["policy"] = {{"targets", {{{"cluster", "a/b/c/d"}, {"weight", 0}}}}};
  only_error(doc, "services[0].policy.targets[0].weight: expected 1..1000000, got 0");
  doc = minimal();
  doc["limits"] = {{"max_request_headers", 0}};
  only_error(doc, "limits.max_request_headers: expected 1..10000, got 0");
  doc = minimal();
  doc["limits"] = {{"max_connections_per_worker", 0}};
  only_error(doc, "limits.max_connections_per_worker: expected 1..1000000, got 0");
  doc = minimal();
  doc["limits"] = {{"max_requests_per_worker", 1000001}};
  only_error(doc, "limits.max_requests_per_worker: expected 1..1000000, got 1000001");
  doc = minimal();
  doc["services"][0]["retry"] = {{"max_retries", 11}};
  only_error(doc, "services[0].retry.max_retries: expected 0..10, got 11");
}

TEST_CASE("required keys", "[config]") {
  json doc = minimal();
  doc["listeners"][0].erase("name");
  only_error(doc, "listeners[0].name: required");
  doc = minimal();
  doc["listeners"][0].erase("port");
  only_error(doc, "listeners[0].port: required");
  doc = minimal();
  doc["services"][0].erase("name");
  doc.erase("routes");
  only_error(doc, "services[0].name: required");
  doc = minimal();
  doc["services"][0]["clusters"][0].erase("cluster");
  only_error(doc, "services[0].clusters[0].cluster: required");
  doc = minimal();
  doc["routes"][0].erase("service");
  only_error(doc, "routes[0].service: required");
  doc = minimal();
  doc["routes"][0].erase("hosts");
  only_error(doc, "routes[0].hosts: required");
  doc = minimal();
  doc["listeners"][0]["tls"] = {{"cert_file", "/dev/null"}};
  only_error(doc, "listeners[0].tls.key_file: required");
  doc = minimal();
  doc["services"][0]["clusters"][0]["endpoints"][0] = {{"port", 1}};
  only_error(doc, "services[0].clusters[0].endpoints[0].address: required");
}

TEST_CASE("enums accept their documented spellings", "[config]") {
  json doc = minimal();
  auto& s = doc["services"][0];
  const std::vector<std::pair<std::string, LoadBalancer>> lbs{
      {"RoundRobin", LoadBalancer::round_robin}, {"RoundRobinLoadBalancer", LoadBalancer::round_robin},
      {"Random", LoadBalancer::random},          {"LeastWork", LoadBalancer::least_work},
      {"LeastWorkLoadBalancer", LoadBalancer::least_work}, {"Hashing", LoadBalancer::hashing},
      {"HashingLoadBalancer", LoadBalancer::hashing}};
  for (const auto& [name, value] : lbs) {
    s["load_balancer"] = name;
    CHECK(config_of(doc).services[0].load_balancer == value);
  }
  s["load_balancer"] = "roundrobin";
  only_error(doc, "services[0].load_balancer: expected one of \"RoundRobin\", \"RoundRobinLoadBalancer\", \"Random\", "
                  "\"LeastWork\", \"LeastWorkLoadBalancer\", \"Hashing\", \"HashingLoadBalancer\", got \"roundrobin\"");
  s.erase("load_balancer");

  for (const auto& [name, value] : std::vector<std::pair<std::string, LbType>>{
           {"Locality", LbType::locality}, {"ActiveActive", LbType::active_active}, {"FailOver", LbType::fail_over}}) {
    s["policy"] = {{"lb_type", name}};
    CHECK(config_of(doc).services[0].policy.lb_type == value);
  }
  s["policy"] = {{"lb_type", "Failover"}};
  only_error(doc, "services[0].policy.lb_type: expected one of \"Locality\", \"ActiveActive\", \"FailOver\", got \"Failover\"");
  s.erase("policy");

  for (const auto& [name, value] : std::vector<std::pair<std::string, HashOn>>{
           {"client_address", HashOn::client_address}, {"header", HashOn::header}, {"cookie", HashOn::cookie}}) {
    s["hash"] = {{"on", name}, {"name", "x"}};
    CHECK(config_of(doc).services[0].hash.on == value);
  }
  s["hash"] = {{"on", "ip"}};
  only_error(doc, "services[0].hash.on: expected one of \"client_address\", \"header\", \"cookie\", got \"ip\"");
  s.erase("hash");

  for (const auto& [name, value] : std::vector<std::pair<std::string, PathMatch>>{
           {"prefix", PathMatch::prefix}, {"Prefix", PathMatch::prefix}, {"exact", PathMatch::exact}, {"Exact", PathMatch::exact}}) {
    doc["routes"][0]["path_match"] = name;
    CHECK(config_of(doc).routes[0].path_match == value);
  }
  doc["routes"][0]["path_match"] = "regex";
  only_error(doc, "routes[0].path_match: expected one of \"prefix\", \"exact\", \"Prefix\", \"Exact\", got \"regex\"");
  doc["routes"][0].erase("path_match");

  for (const auto& [name, value] : std::vector<std::pair<std::string, Role>>{
           {"standalone", Role::standalone}, {"sidecar", Role::sidecar}, {"gateway", Role::gateway}}) {
    doc["listeners"][0]["role"] = name;
    CHECK(config_of(doc).listeners[0].role == value);
  }
  doc["listeners"][0]["role"] = "ingress";
  only_error(doc, "listeners[0].role: expected one of \"standalone\", \"sidecar\", \"gateway\", got \"ingress\"");
}

TEST_CASE("durations are strings with a unit", "[config]") {
  json doc = minimal();
  doc["timeouts"] = {{"connect", "fast"}};
  only_error(doc, "timeouts.connect: expected a duration like \"2s\", got \"fast\"");
  doc["timeouts"] = {{"connect", 2}};
  only_error(doc, "timeouts.connect: expected a duration like \"2s\", got 2");
  doc["timeouts"] = {{"connect", "2"}};
  only_error(doc, "timeouts.connect: expected a duration like \"2s\", got \"2\"");
  doc["timeouts"] = {{"connect", "-2s"}};
  only_error(doc, "timeouts.connect: expected a duration like \"2s\", got \"-2s\"");
  doc["timeouts"] = {{"connect", "1.5s"}};
  CHECK(config_of(doc).timeouts.connect == 1500ms);
}

TEST_CASE("endpoints as strings: IPv4, bracketed IPv6, host names", "[config]") {
  json doc = minimal();
  auto& eps = doc["services"][0]["clusters"][0]["endpoints"];
  eps = {"127.0.0.1:9001", "[::1]:9002", "backend.local:80", "[fe80::1]:65535"};
  const Config c = config_of(doc);
  const auto& e = c.services[0].clusters[0].endpoints;
  REQUIRE(e.size() == 4);
  CHECK(e[0].address == "127.0.0.1");
  CHECK(e[0].port == 9001);
  CHECK(e[1].address == "::1");
  CHECK(e[1].port == 9002);
  CHECK(e[2].address == "backend.local");
  CHECK(e[2].port == 80);
  CHECK(e[3].address == "fe80::1");
  CHECK(e[3].port == 65535);
  for (const auto& x : e) {
    CHECK(x.weight == 1);
    CHECK(x.ready);
  }

  const std::string at = "services[0].clusters[0].endpoints[0]: ";
  const std::string shape = "expected \"host:port\" or \"[ipv6]:port\", got ";
  for (const std::string bad : {"127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:http", "[::1]9001", "[::1]:", "[::1", "127.0.0.1:80x"}) {
    eps = {bad};
    only_error(doc, at + shape + json(bad).dump());
  }
  eps = {"::1:9001"};
  only_error(doc, at + "an IPv6 address needs brackets, e.g. \"[::1]:9001\", got \"::1:9001\"");
  eps = {"127.0.0.1:70000"};
  only_error(doc, at + "port expected 1..65535, got 70000");
  eps = {"127.0.0.1:0"};
  only_error(doc, at + "port expected 1..65535, got 0");
  eps = {42};
  only_error(doc, at + "expected \"host:port\" or an object, got 42");
}

TEST_CASE("session_sticky as a boolean or an object, targets as keys or objects", "[config]") {
  json doc = minimal();
  doc["services"][0]["session_sticky"] = true;
  Config c = config_of(doc);
  CHECK(c.services[0].session_sticky.enabled);
  CHECK(c.services[0].session_sticky.cookie == "sluice-sticky");
  doc["services"][0]["session_sticky"] = "yes";
  only_error(doc, "services[0].session_sticky: expected an object, got \"yes\"");

  doc = minimal();
  doc["services"][0]["policy"] = {{"lb_type", "ActiveActive"}, {"targets", {"a/b/c/d", {{"cluster", "e/f/g/h"}, {"weight", 7}}}}};
  c = config_of(doc);
  REQUIRE(c.services[0].policy.targets.size() == 2);
  CHECK(c.services[0].policy.targets[0].cluster == "a/b/c/d");
  CHECK_FALSE(c.services[0].policy.targets[0].weight);
  CHECK(c.services[0].policy.targets[1].weight == 7u);
  doc["services"][0]["policy"]["targets"] = {1};
  only_error(doc, "services[0].policy.targets[0]: expected a cluster key or an object, got 1");
}

TEST_CASE("malformed JSON reports the parser's line and column", "[config]") {
  const auto errors = errors_of_text("{\n  \"workers\": 1,\n  \"log_level\": \n}");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].rfind("parse error at line 4, column 1:", 0) == 0);
  CHECK(errors_of_text("").size() == 1);
  CHECK(errors_of_text("{\"a\": 1} trailing").size() == 1);
  CHECK(errors_of_text("[1, 2]") == std::vector<std::string>{"expected an object, got an array"});
  CHECK(errors_of_text("null") == std::vector<std::string>{"expected an object, got null"});
}

TEST_CASE("every error is collected, not just the first", "[config]") {
  json doc = minimal();
  doc["workers"] = -1;
  doc["listeners"][0]["port"] = 70000;
  doc["services"][0]["lodbalancer"] = "x";
  doc["routes"][0]["service"] = "foo.bar";
  doc["timeouts"] = {{"connect", "fast"}};
  const auto errors = errors_of(doc);
  INFO(json(errors).dump());
  CHECK(errors.size() == 5);
  CHECK(contains(errors, "workers: expected 0..1024, got -1"));
  CHECK(contains(errors, "listeners[0].port: expected 1..65535, got 70000"));
  CHECK(contains(errors, "services[0].lodbalancer: unknown key (did you mean \"load_balancer\"?)"));
  CHECK(contains(errors, "routes[0].service: no service \"foo.bar\" (services are named \"name.namespace\")"));
  CHECK(contains(errors, "timeouts.connect: expected a duration like \"2s\", got \"fast\""));
}

TEST_CASE("one mistake gives one message", "[config]") {
  json doc = minimal();
  doc["services"][0] = 5;  // the route's service is then missing too, but the cause is here
  doc.erase("routes");
  only_error(doc, "services[0]: expected an object, got 5");
}

TEST_CASE("load_config_file", "[config]") {
  SECTION("an unreadable file is one error naming it") {
    const ParseResult r = load_config_file("/nonexistent/sluice.json");
    CHECK_FALSE(r.config);
    CHECK(r.errors == std::vector<std::string>{"/nonexistent/sluice.json: cannot read the config file"});
    const ParseResult dir = load_config_file("/");
    CHECK(dir.errors == std::vector<std::string>{"/: cannot read the config file"});
  }
  const auto dir = std::filesystem::temp_directory_path() / ("sluice-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto write = [](const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; };
  SECTION("a parse error names the file") {
    write(dir / "bad.json", "{\"workers\": }");
    const ParseResult r = load_config_file((dir / "bad.json").string());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].rfind((dir / "bad.json").string() + ": parse error at line 1, column 13", 0) == 0);
  }
  SECTION("relative TLS files are relative to the config file's directory") {
    write(dir / "cert.pem", "x");
    write(dir / "key.pem", "x");
    json doc = minimal();
    doc["listeners"][0]["tls"] = {{"cert_file", "cert.pem"}, {"key_file", "key.pem"}};
    write(dir / "tls.json", doc.dump());
    const ParseResult r = load_config_file((dir / "tls.json").string());
    INFO(json(r.errors).dump());
    REQUIRE(r.config);
    CHECK(r.config->listeners[0].tls->cert_file == (dir / "cert.pem").string());
    CHECK(r.config->listeners[0].tls->key_file == (dir / "key.pem").string());
    doc["listeners"][0]["tls"]["key_file"] = "missing.pem";
    write(dir / "tls.json", doc.dump());
    CHECK(load_config_file((dir / "tls.json").string()).errors ==
          std::vector<std::string>{"listeners[0].tls.key_file: cannot read \"" + (dir / "missing.pem").string() + "\""});
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("the example configs parse cleanly", "[config]") {
  const char* examples = std::getenv("SLUICE_EXAMPLES");
  REQUIRE(examples);
  const ParseResult r = load_config_file(std::string(examples) + "/sluice.json");
  INFO(json(r.errors).dump());
  REQUIRE(r.config);
  const Config& c = *r.config;
  CHECK(c.cluster.key() == "default/default/default/cluster-1");
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].address == "127.0.0.1");
  CHECK(c.listeners[0].port == 8080);
  CHECK(c.listeners[0].role == Role::standalone);
  CHECK(c.admin.address == "127.0.0.1");
  CHECK(c.admin.port == 9901);
  REQUIRE(c.services.size() == 1);
  CHECK(c.services[0].id() == "httpbin.httpbin");
  REQUIRE(c.services[0].clusters.size() == 1);
  CHECK(c.services[0].clusters[0].cluster == c.cluster.key());
  CHECK(c.services[0].clusters[0].endpoints.size() == 2);
  REQUIRE_FALSE(c.routes.empty());
  CHECK(c.routes[0].service == "httpbin.httpbin");

  // The other example configs documented in config/README.md.
  for (const char* name : {"sidecar-failover.json", "gateway.json"}) {
    const ParseResult each = load_config_file(std::string(examples) + "/" + name);
    INFO(name << ": " << json(each.errors).dump());
    CHECK(each.config);
  }
}

TEST_CASE("a key repeated in one object is an error", "[config]") {
  CHECK(errors_of_text(R"({"workers": 1, "workers": 2})") == std::vector<std::string>{"workers: duplicate key"});
  const std::string text = R"({"listeners": [{"name": "a", "port": 1}, {"name": "b", "port": 2, "port": 3}],
      "services": [{"name": "s", "clusters": [{"cluster": "a/b/c/d", "endpoints": ["1.2.3.4:1", {"address": "x", "port": 1, "address": "y"}]}]}],
      "admin": {"port": 9901, "port": 9902}})";
  CHECK(errors_of_text(text) == std::vector<std::string>{"listeners[1].port: duplicate key",
                                                        "services[0].clusters[0].endpoints[1].address: duplicate key",
                                                        "admin.port: duplicate key"});
  // The same key in different objects is fine.
  CHECK(parse_config(R"({"listeners": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]})").config);
}

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void collect_keys(const json& j, std::set<std::string>& keys) {
  if (j.is_object()) {
    for (const auto& item : j.items()) {
      keys.insert(item.key());
      collect_keys(item.value(), keys);
    }
  } else if (j.is_array()) {
    for (const auto& v : j) collect_keys(v, keys);
  }
}

}  // namespace

TEST_CASE("config/README.md documents every key and shows examples/sluice.json as it is", "[config]") {
  const char* source = std::getenv("SLUICE_SOURCE");
  REQUIRE(source);
  const std::string readme = read_file(std::string(source) + "/config/README.md");
  REQUIRE_FALSE(readme.empty());
  std::set<std::string> keys;
  collect_keys(json::parse(everything), keys);
  for (const auto& key : keys) {
    INFO(key);
    CHECK(readme.find("`" + key + "`") != std::string::npos);
  }
  const auto start = readme.find("```json\n");
  REQUIRE(start != std::string::npos);
  const auto end = readme.find("```", start + 8);
  CHECK(readme.substr(start + 8, end - start - 8) == read_file(std::string(source) + "/examples/sluice.json"));
}

// Golden cases: tests/config/cases/NAME.json gives exactly the lines of NAME.errors.
TEST_CASE("golden error cases", "[config]") {
  const char* source = std::getenv("SLUICE_SOURCE");
  REQUIRE(source);
  const std::filesystem::path dir = std::filesystem::path(source) / "tests/config/cases";
  std::size_t cases = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    ++cases;
    auto expected_path = entry.path();
    expected_path.replace_extension(".errors");
    std::vector<std::string> expected;
    std::istringstream lines(read_file(expected_path.string()));
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) expected.push_back(line);
    }
    const ParseResult r = parse_config(read_file(entry.path().string()));
    INFO(entry.path().filename().string() << " gave:\n" << [&] {
      std::string all;
      for (const auto& e : r.errors) all += e + "\n";
      return all;
    }());
    CHECK(r.errors == expected);
  }
  CHECK(cases >= 3);
}
