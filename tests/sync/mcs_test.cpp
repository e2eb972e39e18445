// The MCS form of `sluice sync` (sync/mcs.cpp): the endpoint-less ServiceImport and the per-cluster
// EndpointSlices, and managed_matches.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "sync/mcs.hpp"

using namespace sluice::sync;
using nlohmann::json;

namespace {

Merged merged_http() {
  Merged m;
  m.type = "ClusterSetIP";
  m.session_affinity = "None";
  m.ports.push_back(ImportPort{"http", "TCP", 8080, {}});
  for (const char* c : {"cluster-1", "cluster-3"}) m.clusters.push_back(ClusterStatus{c, {}});
  return m;
}

}  // namespace

TEST_CASE("MCS import: ports without endpoints, clusters in status", "[sync]") {
  json imp = mcs_import_object(merged_http(), "httpbin", "httpbin");
  CHECK(imp["apiVersion"] == "multicluster.x-k8s.io/v1alpha1");
  CHECK(imp["spec"]["ports"] == json::parse(R"([{"name":"http","protocol":"TCP","port":8080}])"));
  CHECK(imp["status"]["clusters"] == json::parse(R"([{"cluster":"cluster-1"},{"cluster":"cluster-3"}])"));
  CHECK(is_managed(imp));
}

TEST_CASE("MCS slice: ready addresses of every local slice, sorted and unique; only merged ports", "[sync]") {
  json a = json::parse(R"({"addressType":"IPv4","ports":[{"name":"http","port":80},{"name":"debug","port":6060}],
    "endpoints":[{"addresses":["10.0.0.2"]},{"addresses":["10.0.0.9"],"conditions":{"ready":false}}]})");
  json b = json::parse(R"({"addressType":"IPv4","ports":[{"name":"http","port":80}],
    "endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":true}},{"addresses":["10.0.0.2"]}]})");
  json s = mcs_slice_object(merged_http(), "httpbin", "httpbin", "cluster-1", {&a, &b});
  CHECK(s["metadata"]["name"] == "httpbin-cluster-1");
  CHECK(s["metadata"]["labels"]["multicluster.kubernetes.io/service-name"] == "httpbin");
  CHECK(s["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"] == "cluster-1");
  CHECK(s["ports"] == json::parse(R"([{"name":"http","port":80}])"));
  REQUIRE(s["endpoints"].size() == 2);
  CHECK(s["endpoints"][0]["addresses"][0] == "10.0.0.1");
  CHECK(s["endpoints"][1]["addresses"][0] == "10.0.0.2");
  // The same inputs in another order: the same object (no write when nothing changed).
  CHECK(mcs_slice_object(merged_http(), "httpbin", "httpbin", "cluster-1", {&b, &a})["endpoints"] == s["endpoints"]);
}

TEST_CASE("managed_matches compares the given fields, labels and status.clusters", "[sync]") {
  json desired = mcs_slice_object(merged_http(), "httpbin", "httpbin", "cluster-1", {});
  json existing = desired;
  existing["metadata"]["resourceVersion"] = "7";
  existing["metadata"]["labels"]["extra"] = "kept";
  const std::vector<std::string> fields{"addressType", "ports", "endpoints"};
  CHECK(managed_matches(existing, desired, fields));
  existing["endpoints"] = json::array({{{"addresses", {"1.2.3.4"}}}});
  CHECK_FALSE(managed_matches(existing, desired, fields));
  json unlabelled = desired;
  unlabelled["metadata"].erase("labels");
  CHECK_FALSE(managed_matches(unlabelled, desired, fields));
  json imp = mcs_import_object(merged_http(), "httpbin", "httpbin");
  json moved = imp;
  moved["status"]["clusters"] = json::array();
  CHECK_FALSE(managed_matches(moved, imp, {"spec"}));
}
