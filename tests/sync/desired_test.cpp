// The desired-state function of `sluice sync` (sync/desired.cpp): KEP-1645 ordering, port union,
// conflicts, endpoint order, the importing cluster left out, conditions and idempotence helpers.
#include <algorithm>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "sync/config.hpp"
#include "sync/desired.hpp"

using namespace sluice::sync;
using nlohmann::json;

namespace {

json service(const std::string& ns, const std::string& name, json ports, const std::string& cluster_ip = "10.96.0.10") {
  return {{"metadata", {{"namespace", ns}, {"name", name}}},
          {"spec", {{"clusterIP", cluster_ip}, {"ports", std::move(ports)}}}};
}

json export_of(const std::string& created, json rules) {
  return {{"metadata", {{"namespace", "httpbin"}, {"name", "httpbin"}, {"creationTimestamp", created}}},
          {"spec", {{"rules", std::move(rules)}}}};
}

const json http_port = json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}});
const json rule_8080 = json::array({{{"portNumber", 8080}, {"path", "/httpbin"}, {"pathType", "Prefix"}}});

ExportInput input(const std::string& name, const std::string& created, const json& svc = service("httpbin", "httpbin", http_port),
                  const json& rules = rule_8080, std::string ip = "") {
  const std::string key = "default/default/default/" + name;
  if (ip.empty()) ip = name == "cluster-1" ? "127.0.0.11" : name == "cluster-2" ? "127.0.0.12" : "127.0.0.13";
  Gateway gw{ip, ip, static_cast<std::uint16_t>(name == "cluster-1" ? 18081 : name == "cluster-2" ? 18082 : 18083)};
  return export_input(key, name, gw, export_of(created, rules), &svc);
}

const std::string k1 = "default/default/default/cluster-1";
const std::string k2 = "default/default/default/cluster-2";
const std::string k3 = "default/default/default/cluster-3";

}  // namespace

TEST_CASE("one export: every other member gets the exporter's gateway with the rule's path", "[sync]") {
  auto r = resolve({input("cluster-1", "2026-12-02T07:00:00Z")});
  REQUIRE(r.merged);
  json imp = import_object(*r.merged, "httpbin", "httpbin", k2);
  CHECK(imp["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "sluice-sync");
  CHECK(imp["spec"]["type"] == "ClusterSetIP");
  REQUIRE(imp["spec"]["ports"].size() == 1);
  const json& port = imp["spec"]["ports"][0];
  CHECK(port["name"] == "http");
  CHECK(port["port"] == 8080);
  CHECK(port["protocol"] == "TCP");
  CHECK(port["endpoints"] == json::parse(R"([{"clusterKey":"default/default/default/cluster-1",
      "target":{"host":"127.0.0.11","ip":"127.0.0.11","port":18081,"path":"/httpbin"}}])"));
  CHECK(imp["status"]["clusters"] ==
        json::parse(R"([{"cluster":"cluster-1","addresses":["http://127.0.0.11:18081/httpbin"]}])"));
  // The exporter's own import leaves its endpoint out.
  json own = import_object(*r.merged, "httpbin", "httpbin", k1);
  CHECK(own["spec"]["ports"][0]["endpoints"].empty());
  REQUIRE(r.verdicts.size() == 1);
  CHECK(r.verdicts[0].valid);
  CHECK(r.verdicts[0].conflict_reason == "NoConflicts");
}

TEST_CASE("two exporters: endpoints sorted by cluster key whatever the age or input order", "[sync]") {
  auto a = input("cluster-3", "2026-12-02T07:00:00Z");
  auto b = input("cluster-1", "2026-12-02T07:05:00Z");
  for (auto inputs : {std::vector{a, b}, std::vector{b, a}}) {
    auto r = resolve(inputs);
    REQUIRE(r.merged);
    json imp = import_object(*r.merged, "httpbin", "httpbin", k2);
    const json& eps = imp["spec"]["ports"][0]["endpoints"];
    REQUIRE(eps.size() == 2);
    CHECK(eps[0]["clusterKey"] == k1);
    CHECK(eps[1]["clusterKey"] == k3);
    CHECK(imp["status"]["clusters"][0]["cluster"] == "cluster-1");
    CHECK(imp["status"]["clusters"][1]["cluster"] == "cluster-3");
    // cluster-3's import holds cluster-1 only.
    json in3 = import_object(*r.merged, "httpbin", "httpbin", k3);
    CHECK(in3["spec"]["ports"][0]["endpoints"].size() == 1);
    CHECK(in3["spec"]["ports"][0]["endpoints"][0]["clusterKey"] == k1);
  }
}

TEST_CASE("no valid export: no import", "[sync]") {
  CHECK_FALSE(resolve({}).merged);
  auto missing = export_input(k1, "cluster-1", Gateway{"127.0.0.11", "127.0.0.11", 18081},
                              export_of("2026-12-02T07:00:00Z", rule_8080), nullptr);
  auto r = resolve({missing});
  CHECK_FALSE(r.merged);
  CHECK_FALSE(r.verdicts[0].valid);
  CHECK(r.verdicts[0].valid_reason == "NoService");
}

TEST_CASE("an export rule naming a port the Service lacks is invalid", "[sync]") {
  json rules = json::array({{{"portNumber", 9090}, {"path", "/x"}}});
  auto r = resolve({input("cluster-1", "2026-12-02T07:00:00Z", service("httpbin", "httpbin", http_port), rules)});
  CHECK_FALSE(r.merged);
  CHECK(r.verdicts[0].valid_reason == "InvalidPort");
  CHECK(r.verdicts[0].valid_message.find("9090") != std::string::npos);
}

TEST_CASE("ExternalName services cannot be exported", "[sync]") {
  json svc = service("httpbin", "httpbin", http_port);
  svc["spec"]["type"] = "ExternalName";
  auto r = resolve({input("cluster-1", "2026-12-02T07:00:00Z", svc)});
  CHECK_FALSE(r.merged);
  CHECK(r.verdicts[0].valid_reason == "InvalidServiceType");
}

TEST_CASE("port conflict: the oldest wins, the tie broken by cluster key; the loser keeps its other ports", "[sync]") {
  json ports3 = json::array({{{"name", "http"}, {"port", 9090}, {"protocol", "TCP"}},
                             {{"name", "admin"}, {"port", 9901}, {"protocol", "TCP"}}});
  json rules3 = json::array({{{"portNumber", 9090}, {"path", "/httpbin"}}, {{"portNumber", 9901}, {"path", "/admin"}}});
  SECTION("older cluster-1 wins") {
    auto r = resolve({input("cluster-3", "2026-12-02T07:00:05Z", service("httpbin", "httpbin", ports3), rules3),
                      input("cluster-1", "2026-12-02T07:00:00Z")});
    REQUIRE(r.merged);
    REQUIRE(r.merged->ports.size() == 2);
    CHECK(r.merged->ports[0].name == "http");
    CHECK(r.merged->ports[0].port == 8080);
    REQUIRE(r.merged->ports[0].endpoints.size() == 1);
    CHECK(r.merged->ports[0].endpoints[0].cluster_key == k1);
    CHECK(r.merged->ports[1].name == "admin");
    CHECK(r.merged->ports[1].endpoints[0].cluster_key == k3);
    CHECK(r.verdicts[0].conflict);
    CHECK(r.verdicts[0].conflict_reason == "PortConflict");
    CHECK(r.verdicts[0].conflict_message.find("cluster-1") != std::string::npos);
    CHECK_FALSE(r.verdicts[1].conflict);
    CHECK(r.verdicts[1].conflict_reason == "NoConflicts");
  }
  SECTION("same second: cluster key order decides") {
    auto r = resolve({input("cluster-3", "2026-12-02T07:00:00Z", service("httpbin", "httpbin", ports3), rules3),
                      input("cluster-1", "2026-12-02T07:00:00Z")});
    REQUIRE(r.merged);
    CHECK(r.merged->ports[0].port == 8080);
    CHECK(r.verdicts[0].conflict);
    CHECK_FALSE(r.verdicts[1].conflict);
  }
  SECTION("older cluster-3 wins") {
    auto r = resolve({input("cluster-3", "2026-12-02T06:00:00Z", service("httpbin", "httpbin", ports3), rules3),
                      input("cluster-1", "2026-12-02T07:00:00Z")});
    REQUIRE(r.merged);
    CHECK(r.merged->ports[0].port == 9090);
    CHECK_FALSE(r.verdicts[0].conflict);
    CHECK(r.verdicts[1].conflict);
    CHECK(r.verdicts[1].conflict_message.find("cluster-3") != std::string::npos);
    CHECK(r.merged->clusters.size() == 1);  // cluster-1 contributed nothing
  }
}

TEST_CASE("same protocol+port under another name conflicts", "[sync]") {
  json web = json::array({{{"name", "web"}, {"port", 8080}, {"protocol", "TCP"}}});
  auto r = resolve({input("cluster-1", "2026-12-02T07:00:00Z"),
                    input("cluster-3", "2026-12-02T07:00:01Z", service("httpbin", "httpbin", web))});
  REQUIRE(r.merged);
  CHECK(r.merged->ports.size() == 1);
  CHECK(r.merged->ports[0].endpoints.size() == 1);
  CHECK(r.verdicts[1].conflict_reason == "PortConflict");
}

TEST_CASE("ports are the union: a port added later by another exporter is merged", "[sync]") {
  json two = json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}},
                          {{"name", "grpc"}, {"port", 9000}, {"protocol", "TCP"}}});
  json rules = json::array({{{"portNumber", 8080}, {"path", "/httpbin"}}, {{"portNumber", 9000}, {"path", "/grpc"}}});
  auto r = resolve({input("cluster-1", "2026-12-02T07:00:00Z"),
                    input("cluster-3", "2026-12-02T07:10:00Z", service("httpbin", "httpbin", two), rules)});
  REQUIRE(r.merged);
  REQUIRE(r.merged->ports.size() == 2);
  CHECK(r.merged->ports[0].endpoints.size() == 2);
  CHECK(r.merged->ports[1].name == "grpc");
  CHECK(r.merged->ports[1].endpoints.size() == 1);
  CHECK(r.merged->ports[1].endpoints[0].target.path == "/grpc");
  CHECK_FALSE(r.verdicts[1].conflict);
}

TEST_CASE("type conflict leaves the later export out whole", "[sync]") {
  auto r = resolve({input("cluster-1", "2026-12-02T07:00:00Z"),
                    input("cluster-3", "2026-12-02T07:00:01Z", service("httpbin", "httpbin", http_port, "None"))});
  REQUIRE(r.merged);
  CHECK(r.merged->type == "ClusterSetIP");
  CHECK(r.merged->ports[0].endpoints.size() == 1);
  CHECK(r.verdicts[1].conflict_reason == "TypeConflict");
  CHECK(r.verdicts[1].conflict_message.find("cluster-1") != std::string::npos);
  // The conflict goes away with the headless export: cleared.
  auto fixed = resolve({input("cluster-1", "2026-12-02T07:00:00Z"), input("cluster-3", "2026-12-02T07:00:01Z")});
  CHECK_FALSE(fixed.verdicts[1].conflict);
  CHECK(fixed.verdicts[1].conflict_reason == "NoConflicts");
}

TEST_CASE("import_matches: equal spec, status and label; server metadata ignored", "[sync]") {
  auto r = resolve({input("cluster-1", "2026-12-02T07:00:00Z")});
  json desired = import_object(*r.merged, "httpbin", "httpbin", k2);
  json existing = desired;
  existing["metadata"]["resourceVersion"] = "42";
  existing["metadata"]["uid"] = "u";
  CHECK(import_matches(existing, desired));
  json unlabelled = existing;
  unlabelled["metadata"].erase("labels");
  CHECK_FALSE(import_matches(unlabelled, desired));
  CHECK_FALSE(is_managed(unlabelled));
  json moved = existing;
  moved["spec"]["ports"][0]["endpoints"][0]["target"]["port"] = 1;
  CHECK_FALSE(import_matches(moved, desired));
  // A gateway address change is a different desired import.
  auto r2 = resolve({input("cluster-1", "2026-12-02T07:00:00Z", service("httpbin", "httpbin", http_port), rule_8080,
                           "127.0.0.99")});
  CHECK_FALSE(import_matches(existing, import_object(*r2.merged, "httpbin", "httpbin", k2)));
}

TEST_CASE("export conditions keep their transition time while unchanged", "[sync]") {
  ExportVerdict v{k1, true, "Valid", "ok", false, "NoConflicts", ""};
  json first = export_conditions(v, json::array(), "2026-12-02T07:00:00Z");
  REQUIRE(first.size() == 2);
  CHECK(first[0]["type"] == "Valid");
  CHECK(first[0]["status"] == "True");
  CHECK(first[1]["type"] == "Conflict");
  CHECK(first[1]["status"] == "False");
  CHECK(first[1]["reason"] == "NoConflicts");
  json again = export_conditions(v, first, "2026-12-02T08:00:00Z");
  CHECK(again == first);
  CHECK_FALSE(conditions_differ(first, again));
  v.conflict = true;
  v.conflict_reason = "PortConflict";
  json changed = export_conditions(v, first, "2026-12-02T08:00:00Z");
  CHECK(changed[1]["lastTransitionTime"] == "2026-12-02T08:00:00Z");
  CHECK(changed[0]["lastTransitionTime"] == "2026-12-02T07:00:00Z");
  CHECK(conditions_differ(first, changed));
  // Another controller's condition stays, and does not make ours differ.
  json mixed = first;
  mixed.insert(mixed.begin(), json{{"type", "Ready"}, {"status", "True"}});
  json kept = export_conditions(ExportVerdict{k1, true, "Valid", "ok", false, "NoConflicts", ""}, mixed, "later");
  REQUIRE(kept.size() == 3);
  CHECK(kept[0]["type"] == "Ready");
  CHECK_FALSE(conditions_differ(mixed, kept));
}

TEST_CASE("timestamps", "[sync]") {
  CHECK(parse_timestamp("1970-01-01T00:01:00Z") == 60);
  CHECK(parse_timestamp("1970-01-01T01:00:00+01:00") == 0);
  CHECK(parse_timestamp("1970-01-01T00:00:01.500Z") == 1);
  CHECK_FALSE(parse_timestamp("yesterday"));
}

TEST_CASE("sync config: defaults, errors name the field", "[sync]") {
  std::vector<std::string> errors;
  auto c = parse_config(R"({"members":[{"name":"cluster-1","kubeconfig":"/k","gateway":{"host":"gw.example","port":18081}}]})",
                        errors);
  REQUIRE(c);
  CHECK(c->members[0].key() == "default/default/default/cluster-1");
  CHECK(c->member_ttl == std::chrono::minutes(5));
  CHECK(c->resync_interval == std::chrono::seconds(30));
  errors.clear();
  CHECK_FALSE(parse_config(R"({"members":[{"name":"a","gateway":{"host":"h"}},{"name":"a","gateway":{"host":"h"}}]})", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "members[1].name: duplicate member name \"a\"");
  errors.clear();
  CHECK_FALSE(parse_config(R"({"members":[{"name":"a"}],"member_ttl":"soon"})", errors));
  CHECK(std::find(errors.begin(), errors.end(), "members[0].gateway: required") != errors.end());
  CHECK(std::any_of(errors.begin(), errors.end(), [](const std::string& e) { return e.starts_with("member_ttl:"); }));
  errors.clear();
  CHECK_FALSE(parse_config(R"({"members":[{"name":"A/b","gateway":{"host":"h"}}]})", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].starts_with("members[0].name: expected lower-case"));
}

TEST_CASE("sync config: leader election timings follow client-go's rules", "[sync]") {
  std::vector<std::string> errors;
  auto c = parse_config(R"({"members":[{"name":"a","kubeconfig":"/k","gateway":{"host":"h"}}],
                             "leader_election":{}})", errors);
  REQUIRE(c);
  REQUIRE(c->leader_election);
  CHECK(c->leader_election->kubeconfig == "/k");  // the first member is the home cluster
  CHECK(c->leader_election->lease_duration == std::chrono::seconds(15));
  CHECK(c->leader_election->renew_deadline == std::chrono::seconds(10));
  CHECK(c->leader_election->retry_period == std::chrono::seconds(2));
  errors.clear();
  CHECK_FALSE(parse_config(R"({"members":[{"name":"a","gateway":{"host":"h"}}],
                               "leader_election":{"lease_duration":"10s","renew_deadline":"10s"}})", errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0] == "leader_election.lease_duration: expected more than renew_deadline");
}

TEST_CASE("carry_over keeps an unknown member's endpoints and status entry", "[sync]") {
  auto both = resolve({input("cluster-1", "2026-12-02T07:00:00Z"), input("cluster-3", "2026-12-02T07:00:01Z")});
  json existing = import_object(*both.merged, "httpbin", "httpbin", k2);
  existing["metadata"]["resourceVersion"] = "9";
  const std::map<std::string, std::string> unknown{{k3, "cluster-3"}};
  const std::map<std::string, std::string> keys{{"cluster-1", k1}, {"cluster-2", k2}, {"cluster-3", k3}};
  // Only cluster-1 is known now: cluster-3's endpoint is carried, the result is what both gave.
  auto one = resolve({input("cluster-1", "2026-12-02T07:00:00Z")});
  json desired = import_object(*one.merged, "httpbin", "httpbin", k2);
  json out = carry_over(existing, &desired, unknown, keys);
  CHECK(out["spec"] == existing["spec"]);
  CHECK(out["status"] == existing["status"]);
  // No known export at all: the import is held with the unknown member's part only.
  json held = carry_over(existing, nullptr, unknown, keys);
  REQUIRE(held["spec"]["ports"].size() == 1);
  REQUIRE(held["spec"]["ports"][0]["endpoints"].size() == 1);
  CHECK(held["spec"]["ports"][0]["endpoints"][0]["clusterKey"] == k3);
  CHECK(held["status"]["clusters"].size() == 1);
  CHECK(is_managed(held));
  // Nothing of the unknown member in the import: the desired state as it is (null: none).
  json only1 = import_object(*one.merged, "httpbin", "httpbin", k2);
  CHECK(carry_over(only1, &desired, unknown, keys) == desired);
  CHECK(carry_over(only1, nullptr, unknown, keys).is_null());
}
