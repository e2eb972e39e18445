// Durations, cluster keys, enum spellings and the error list's rules.
#include "tests/config/test_util.hpp"

#include "config/errors.hpp"
#include "config/text.hpp"

using namespace sluice::config;
using namespace std::chrono_literals;

TEST_CASE("parse_duration", "[config]") {
  CHECK(parse_duration("10s") == 10s);
  CHECK(parse_duration("250ms") == 250ms);
  CHECK(parse_duration("2m") == 2min);
  CHECK(parse_duration("1h") == 1h);
  CHECK(parse_duration("0") == 0ms);
  CHECK(parse_duration("0s") == 0ms);
  CHECK(parse_duration("1h30m") == 90min);
  CHECK(parse_duration("1m30s500ms") == 90500ms);
  CHECK(parse_duration("1.5s") == 1500ms);
  CHECK(parse_duration("0.25h") == 15min);
  CHECK(parse_duration("1.5ms") == 2ms);  // rounded to the nearest millisecond
  CHECK(parse_duration("8760h") == 8760h);
  for (const char* bad : {"", "s", "10", "10 s", " 10s", "10s ", "-1s", "+1s", "1.s", ".5s", "1..5s", "1.2.3s",
                          "10sec", "10S", "1d", "fast", "1e3ms", "1000000000000000h", "876001h"}) {
    INFO(bad);
    CHECK_FALSE(parse_duration(bad));
  }
}

TEST_CASE("format_duration reads back exactly", "[config]") {
  CHECK(format_duration(0ms) == "0");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK(format_duration(10s) == "10s");
  CHECK(format_duration(2min) == "2m");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(3661s) == "1h1m1s");
  for (const auto d : {0ms, 1ms, 999ms, 1000ms, 61000ms, 3600000ms, 86400000ms, 90061001ms}) {
    CHECK(parse_duration(format_duration(d)) == d);
  }
}

TEST_CASE("parse_cluster_key", "[config]") {
  const auto id = parse_cluster_key("default/default/default/cluster-1");
  REQUIRE(id);
  CHECK(id->region == "default");
  CHECK(id->name == "cluster-1");
  CHECK(id->key() == "default/default/default/cluster-1");
  for (const char* bad : {"", "a/b/c", "a/b/c/d/e", "/b/c/d", "a/b/c/", "a//c/d", "a/b c/c/d"}) {
    INFO(bad);
    CHECK_FALSE(parse_cluster_key(bad));
  }
}

TEST_CASE("enum spellings are the canonical JSON ones", "[config]") {
  CHECK(to_string(Role::standalone) == "standalone");
  CHECK(to_string(Role::sidecar) == "sidecar");
  CHECK(to_string(Role::gateway) == "gateway");
  CHECK(to_string(LoadBalancer::round_robin) == "RoundRobin");
  CHECK(to_string(LoadBalancer::random) == "Random");
  CHECK(to_string(LoadBalancer::least_work) == "LeastWork");
  CHECK(to_string(LoadBalancer::hashing) == "Hashing");
  CHECK(to_string(HashOn::client_address) == "client_address");
  CHECK(to_string(HashOn::header) == "header");
  CHECK(to_string(HashOn::cookie) == "cookie");
  CHECK(to_string(LbType::locality) == "Locality");
  CHECK(to_string(LbType::active_active) == "ActiveActive");
  CHECK(to_string(LbType::fail_over) == "FailOver");
  CHECK(to_string(PathMatch::prefix) == "prefix");
  CHECK(to_string(PathMatch::exact) == "exact");
}

TEST_CASE("one table per enum: every spelling parses back, the first of a value is its name", "[config]") {
  for (const auto& n : load_balancer_names) {
    INFO(n.name);
    CHECK(parse_enum(load_balancer_names, n.name) == n.value);
    CHECK(parse_enum(load_balancer_names, to_string(n.value)) == n.value);
  }
  CHECK(parse_enum(load_balancer_names, "RoundRobinLoadBalancer") == LoadBalancer::round_robin);
  CHECK(parse_enum(load_balancer_names, "LeastWorkLoadBalancer") == LoadBalancer::least_work);
  CHECK(parse_enum(load_balancer_names, "HashingLoadBalancer") == LoadBalancer::hashing);
  CHECK_FALSE(parse_enum(load_balancer_names, "roundrobin"));
  CHECK(parse_enum(path_match_names, "Exact") == PathMatch::exact);
  CHECK(parse_enum(lb_type_names, "FailOver") == LbType::fail_over);
  CHECK(parse_enum(role_names, "gateway") == Role::gateway);
  CHECK(parse_enum(hash_on_names, "cookie") == HashOn::cookie);
}

TEST_CASE("ErieCanal's resources accept only ErieCanal's spellings", "[config]") {
  CHECK(parse_enum(load_balancer_names, "HashingLoadBalancer", true) == LoadBalancer::hashing);
  CHECK_FALSE(parse_enum(load_balancer_names, "Hashing", true));
  CHECK_FALSE(parse_enum(load_balancer_names, "Random", true));  // ErieCanal has no Random
  CHECK(parse_enum(path_match_names, "Prefix", true) == PathMatch::prefix);
  CHECK_FALSE(parse_enum(path_match_names, "prefix", true));
  CHECK(parse_enum(lb_type_names, "ActiveActive", true) == LbType::active_active);
}

TEST_CASE("Errors keeps one message per path and nothing below a reported path", "[config]") {
  Errors e;
  e.add("services[0]", "expected an object, got 5");
  e.add("services[0].name", "required");
  e.add("services[0]", "again");
  e.add("services[01]", "a different path");
  e.add("services[1].name", "required");
  e.add("services", "the parent is still reported");
  CHECK(e.list() == std::vector<std::string>{"services[0]: expected an object, got 5",
                                             "services[01]: a different path", "services[1].name: required",
                                             "services: the parent is still reported"});
  CHECK(join_path("", "a") == "a");
  CHECK(join_path("a", "b") == "a.b");
  CHECK(index_path("a.b", 3) == "a.b[3]");
}
