#include <catch2/catch.hpp>

#include "discovery/merge.hpp"

using namespace sluice;
using namespace sluice::discovery;

namespace {

config::Service svc(const std::string& name, bool with_cluster) {
  config::Service s;
  s.name = name;
  s.name_space = "ns";
  if (with_cluster) s.clusters.push_back({"default/default/default/local", "", {{"127.0.0.1", 8080}}, {}});
  return s;
}

}  // namespace

TEST_CASE("merge: static routes first, static services with clusters win, templates tune", "[discovery]") {
  routing::Model base;
  base.services = {svc("fixed", true), svc("tuned", false), svc("lonely", false)};
  base.services[1].load_balancer = config::LoadBalancer::least_work;
  base.services[1].retry.max_retries = 7;
  config::Route static_route;
  static_route.service = "fixed.ns";
  base.routes = {static_route};

  Translation k8s;
  auto k_fixed = svc("fixed", false);
  k_fixed.clusters.push_back({"default/default/default/local", "", {{"10.0.0.9", 80}}, {}});
  auto k_tuned = svc("tuned", false);
  k_tuned.clusters.push_back({"default/default/default/c1", "/tuned", {{"10.0.0.1", 80}}, {}});
  k_tuned.policy.lb_type = config::LbType::active_active;
  k8s.services = {k_fixed, k_tuned, svc("new", false)};
  config::Route k8s_route;
  k8s_route.service = "tuned.ns";
  k8s.routes = {k8s_route};

  auto m = merge_model(base, k8s, true);
  CHECK(m.stale);
  CHECK(m.source == "static+kubernetes");
  REQUIRE(m.routes.size() == 2);
  CHECK(m.routes[0].service == "fixed.ns");
  CHECK(m.routes[1].service == "tuned.ns");
  std::map<std::string, config::Service> by_id;
  for (const auto& s : m.services) by_id[s.id()] = s;
  REQUIRE(by_id.size() == 4);
  CHECK(by_id["fixed.ns"].clusters.at(0).endpoints.at(0).address == "127.0.0.1");
  CHECK(by_id["tuned.ns"].clusters.at(0).cluster == "default/default/default/c1");
  CHECK(by_id["tuned.ns"].load_balancer == config::LoadBalancer::least_work);
  CHECK(by_id["tuned.ns"].retry.max_retries == 7);
  CHECK(by_id["tuned.ns"].policy.lb_type == config::LbType::active_active);
  CHECK(by_id.count("new.ns"));
  CHECK(by_id.count("lonely.ns"));

  routing::Model empty;
  auto only = merge_model(empty, Translation{}, false);
  CHECK_FALSE(only.stale);
  CHECK(only.source == "kubernetes");
}
