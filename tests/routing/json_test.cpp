// Admin views: snapshot_to_json and explain.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "fixtures.hpp"
#include "routing/json.hpp"

using namespace sluice;
using namespace sluice::routing;
using namespace sluice::routing::test;

TEST_CASE("snapshot_to_json and explain describe tiers, clusters and endpoints", "[routing]") {
  auto s = service("httpbin", {cluster(kLocal, endpoints(2)), cluster(kC1, {ep("172.16.0.1", 80)}, "/httpbin")});
  s.policy.lb_type = config::LbType::fail_over;
  s.policy.targets = {config::PolicyTarget{kC1, std::nullopt}};
  Harness h(model_of({s}));
  auto snap = h.table.load();
  auto j = snapshot_to_json(*snap, h.clock.now);
  CHECK(j["generation"] == 1);
  const auto& svc = j["services"][0];
  CHECK(svc["id"] == "httpbin.default");
  CHECK(svc["policy"] == "FailOver");
  CHECK(svc["tiers"].size() == 2);
  CHECK(svc["tiers"][0]["load_percent"] == 100.0);
  CHECK(svc["tiers"][1]["clusters"][0]["path_prefix"] == "/httpbin");
  CHECK(svc["tiers"][0]["clusters"][0]["state"] == "healthy");
  CHECK(svc["tiers"][0]["clusters"][0]["endpoints"].size() == 2);

  auto req = h.request("httpbin", "/get");
  auto e = explain(*snap, req, h.clock.now);
  CHECK(e["route"]["service"] == "httpbin.default");
  CHECK(e["candidates"].size() == 3);  // tier 1 is a candidate too, at 0% load
  CHECK(e["candidates"][2]["upstream_target"] == "/httpbin/get");
  auto none = explain(*snap, h.request("nope"), h.clock.now);
  CHECK(none["route"].is_null());
}
