// Multi-cluster policy: ActiveActive weights, FailOver spill math and panic, slow start.
#include <catch2/catch.hpp>

#include <cmath>

#include "fixtures.hpp"
#include "routing/health.hpp"
#include "routing/tiers.hpp"

using namespace sluice;
using namespace sluice::routing;
using namespace sluice::routing::test;

namespace {

config::PolicyTarget target(std::string key, std::optional<std::uint32_t> weight = std::nullopt) {
  return config::PolicyTarget{std::move(key), weight};
}

std::map<std::string, int> by_cluster(Harness& h, std::string_view host, int n) {
  std::map<std::string, int> counts;
  auto req = h.request(host);
  for (int i = 0; i < n; ++i) {
    AttemptState a;
    auto r = h.picker.pick(req, a, h.clock.now);
    ++counts[std::string(r.status == PickStatus::ok ? r.cluster : "none")];
    h.picker.finish(r, Outcome::success, h.clock.now);
  }
  return counts;
}

// A tier's health with every endpoint reachable and none ramping.
TierHealth th(std::size_t healthy, std::size_t total) { return TierHealth{double(healthy), healthy, total, total}; }

// Ejects `address` of service 0 for an opinion (as 5xx would; reachable, so panic may still use it).
void eject(Harness& h, const std::string& address) {
  auto snap = h.table.load();
  for (const auto& e : snap->services[0].endpoints) {
    if (e.address == address) {
      e.state->ejected_until.store(to_ticks(h.clock.now + 30s));
      e.state->service->bump_epoch();
    }
  }
}

}  // namespace

TEST_CASE("tier loads: Envoy overprovisioning 1.4 worked examples", "[routing]") {
  TierLoad out[3];
  // 10 endpoints, 8 healthy: 8/10 * 1.4 = 112% -> tier 0 keeps everything.
  TierHealth a[2] = {th(8, 10), th(2, 2)};
  compute_tier_loads(a, 2, 1.4, 0.5, out);
  CHECK(out[0].load == Approx(100));
  CHECK(out[1].load == Approx(0));
  // 6 of 10 healthy: 6/10 * 1.4 = 84% stays, 16% spills to tier 1.
  TierHealth b[2] = {th(6, 10), th(2, 2)};
  compute_tier_loads(b, 2, 1.4, 0.5, out);
  CHECK(out[0].load == Approx(84));
  CHECK(out[1].load == Approx(16));
  // 2 of 10 healthy in tier 0 (28%), tier 1 3 of 10 (42%): 28 + 42 = 70 < 100 -> scaled to 40/60,
  // both below the 50% panic threshold -> panic in both.
  TierHealth c[2] = {th(2, 10), th(3, 10)};
  compute_tier_loads(c, 2, 1.4, 0.5, out);
  CHECK(out[0].load == Approx(40));
  CHECK(out[1].load == Approx(60));
  CHECK(out[0].panic);
  CHECK(out[1].panic);
  // Nothing healthy: tier 0 takes all, in panic; an empty tier 0 passes it on.
  TierHealth d[3] = {th(0, 0), th(0, 4), th(0, 2)};
  compute_tier_loads(d, 3, 1.4, 0.5, out);
  CHECK(out[0].load == 0);
  CHECK(out[1].load == Approx(100));
  CHECK(out[1].panic);
  // Overprovisioning 0: ErieCanal all-or-nothing.
  TierHealth e[2] = {th(1, 10), th(5, 5)};
  compute_tier_loads(e, 2, 0, 0.5, out);
  CHECK(out[0].load == Approx(100));
  TierHealth f[2] = {th(0, 10), th(5, 5)};
  compute_tier_loads(f, 2, 0, 0.5, out);
  CHECK(out[1].load == Approx(100));
  // Cluster states.
  CHECK(cluster_health(10, 10, 1.4) == ClusterHealth::healthy);
  CHECK(cluster_health(8, 10, 1.4) == ClusterHealth::healthy);
  CHECK(cluster_health(6, 10, 1.4) == ClusterHealth::degraded);
  CHECK(cluster_health(0, 10, 1.4) == ClusterHealth::down);
}

TEST_CASE("ActiveActive balances local and target clusters together", "[routing]") {
  auto s = service("httpbin", {cluster(kC1, {ep("172.16.0.1", 80)}, "/httpbin"),
                               cluster(kC3, {ep("172.16.0.3", 80)}, "/httpbin"),
                               cluster(kC2, {ep("172.16.0.2", 80)}, "/httpbin")});
  s.policy.lb_type = config::LbType::active_active;
  s.policy.targets = {target(kC1), target(kC3)};
  Harness h(model_of({s}));
  auto req = h.request("httpbin", "/get");
  AttemptState a1, a2;
  auto r1 = h.picker.pick(req, a1, h.clock.now);
  auto r2 = h.picker.pick(req, a2, h.clock.now);
  REQUIRE(r1.status == PickStatus::ok);
  REQUIRE(r2.status == PickStatus::ok);
  CHECK(r1.cluster != r2.cluster);  // alternating, as in the seed
  CHECK(r1.remote);
  CHECK(r1.upstream_target == "/httpbin/get");
  h.picker.finish(r1, Outcome::success, h.clock.now);
  h.picker.finish(r2, Outcome::success, h.clock.now);
  auto counts = by_cluster(h, "httpbin", 1000);
  CHECK(counts[kC1] == 500);
  CHECK(counts[kC3] == 500);
  CHECK(counts.count(kC2) == 0);  // not a target
}

TEST_CASE("ActiveActive target weights 80/20 split traffic between clusters", "[routing]") {
  // cluster-1 has 3 endpoints, cluster-3 one: the weights are per cluster, not per endpoint.
  auto s = service("svc", {cluster(kC1, endpoints(3, "10.1.0.")), cluster(kC3, endpoints(1, "10.3.0."))});
  s.policy.lb_type = config::LbType::active_active;
  s.policy.targets = {target(kC1, 80), target(kC3, 20)};
  for (auto lb : {config::LoadBalancer::round_robin, config::LoadBalancer::random, config::LoadBalancer::least_work}) {
    s.load_balancer = lb;
    Harness h(model_of({s}));
    const int n = 20000;
    auto counts = by_cluster(h, "svc", n);
    CHECK(std::abs(counts[kC1] / double(n) - 0.8) < 0.02);
    CHECK(std::abs(counts[kC3] / double(n) - 0.2) < 0.02);
  }
  // An ejected endpoint's share goes to the rest of its cluster, not to the other cluster.
  s.load_balancer = config::LoadBalancer::round_robin;
  s.outlier_detection.max_ejection_percent = 100;
  Harness h(model_of({s}));
  eject(h, "10.1.0.1");
  auto counts = by_cluster(h, "svc", 10000);
  CHECK(counts[kC1] == 8000);
  CHECK(counts[kC3] == 2000);
}

TEST_CASE("FailOver: local first, graded spill, all to the next tier when none is healthy", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(10, "10.0.0.")), cluster(kC1, endpoints(2, "10.1.0.")),
                           cluster(kC3, endpoints(2, "10.3.0."))});
  s.policy.lb_type = config::LbType::fail_over;
  s.policy.targets = {target(kC1), target(kC3)};
  s.outlier_detection.max_ejection_percent = 100;
  Harness h(model_of({s}));
  const int n = 20000;
  auto counts = by_cluster(h, "svc", n);
  CHECK(counts[kLocal] == n);

  // 8 of 10 healthy: 112% -> still all local.
  eject(h, "10.0.0.1");
  eject(h, "10.0.0.2");
  counts = by_cluster(h, "svc", n);
  CHECK(counts[kLocal] == n);

  // 6 of 10 healthy: 84% local, 16% to cluster-1, nothing to cluster-3.
  eject(h, "10.0.0.3");
  eject(h, "10.0.0.4");
  counts = by_cluster(h, "svc", n);
  CHECK(std::abs(counts[kLocal] / double(n) - 0.84) < 0.015);
  CHECK(std::abs(counts[kC1] / double(n) - 0.16) < 0.015);
  CHECK(counts[kC3] == 0);

  // None local: all to cluster-1; then cluster-1 down too: all to cluster-3.
  for (int i = 5; i <= 10; ++i) eject(h, "10.0.0." + std::to_string(i));
  counts = by_cluster(h, "svc", 2000);
  CHECK(counts[kC1] == 2000);
  eject(h, "10.1.0.1");
  eject(h, "10.1.0.2");
  counts = by_cluster(h, "svc", 2000);
  CHECK(counts[kC3] == 2000);

  // Ejections end: traffic comes back to the local tier (ramping, see the slow-start test).
  h.clock.advance(31s + 10s);
  counts = by_cluster(h, "svc", 2000);
  CHECK(counts[kLocal] == 2000);
}

TEST_CASE("FailOver with overprovisioning 0 is all-or-nothing", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(10, "10.0.0.")), cluster(kC1, endpoints(2, "10.1.0."))});
  s.policy.lb_type = config::LbType::fail_over;
  s.policy.targets = {target(kC1)};
  s.policy.overprovisioning = 0;
  s.outlier_detection.max_ejection_percent = 100;
  Harness h(model_of({s}));
  for (int i = 1; i <= 9; ++i) eject(h, "10.0.0." + std::to_string(i));
  auto counts = by_cluster(h, "svc", 1000);
  CHECK(counts[kLocal] == 1000);
  eject(h, "10.0.0.10");
  counts = by_cluster(h, "svc", 1000);
  CHECK(counts[kC1] == 1000);
}

TEST_CASE("panic: a mostly-ejected tier with nowhere to spill balances over all its endpoints", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(4))});
  s.outlier_detection.max_ejection_percent = 100;
  Harness h(model_of({s}));
  eject(h, "10.0.0.1");
  auto counts = h.spread("svc", 300);
  CHECK(counts.count("10.0.0.1") == 0);  // 3/4 healthy: 75% >= 50%, no panic
  eject(h, "10.0.0.2");
  eject(h, "10.0.0.3");
  counts = h.spread("svc", 400);  // 1/4 healthy: panic, all four share the load
  CHECK(counts["10.0.0.1"] == 100);
  CHECK(counts["10.0.0.4"] == 100);
}

TEST_CASE("slow start ramps a returning endpoint over the window", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(2))});
  s.slow_start_window = 10s;
  Harness h(model_of({s}));
  // A third endpoint joins an existing service: it starts at 10% of its weight.
  auto more = s;
  more.clusters[0].endpoints.push_back(ep("10.0.0.3"));
  h.publish(model_of({more}));
  auto counts = h.spread("svc", 2100);
  // weights 1, 1, 0.1 -> 0.1/2.1 = ~4.8%
  CHECK(std::abs(counts["10.0.0.3"] - 100) <= 2);
  h.clock.advance(5s);  // halfway: weight 0.5 -> 0.5/2.5 = 20%
  counts = h.spread("svc", 2500);
  CHECK(std::abs(counts["10.0.0.3"] - 500) <= 10);
  h.clock.advance(5s);  // done: a third each
  counts = h.spread("svc", 3000);
  CHECK(counts["10.0.0.3"] == 1000);
}

TEST_CASE("failback: a recovered local cluster ramps traffic back over the window", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(2, "10.0.0.")), cluster(kC1, endpoints(2, "10.1.0."))});
  s.policy.lb_type = config::LbType::fail_over;
  s.policy.targets = {target(kC1)};
  s.slow_start_window = 10s;
  s.outlier_detection.max_ejection_percent = 100;
  Harness h(model_of({s}));
  eject(h, "10.0.0.1");
  eject(h, "10.0.0.2");
  CHECK(by_cluster(h, "svc", 100)[kC1] == 100);
  h.clock.advance(30s);  // ejections end now; ramp starts at 10%
  const int n = 10000;
  auto counts = by_cluster(h, "svc", n);
  // healthy amount 0.1 + 0.1 = 0.2 of 2 -> 0.1 * 1.4 = 14% local
  CHECK(std::abs(counts[kLocal] / double(n) - 0.14) < 0.02);
  h.clock.advance(4s);  // 40% -> 56% local
  counts = by_cluster(h, "svc", n);
  CHECK(std::abs(counts[kLocal] / double(n) - 0.56) < 0.02);
  h.clock.advance(6s);
  counts = by_cluster(h, "svc", n);
  CHECK(counts[kLocal] == n);
}

TEST_CASE("tier loads: panic counts reachable endpoints; dead ones only as the last resort", "[routing]") {
  TierLoad out[2];
  // 4 endpoints, 3 dead, 1 healthy: health 1.4 * 1/4 = 35 -> all the load (the only tier), and no panic:
  // every reachable endpoint is healthy.
  TierHealth one[1] = {TierHealth{1, 1, 4, 1}};
  compute_tier_loads(one, 1, 1.4, 0.5, out);
  CHECK(out[0].load == Approx(100));
  CHECK_FALSE(out[0].panic);
  // Nothing healthy; tier 0 all dead, tier 1 reachable but failing: tier 1 takes everything in panic.
  TierHealth two[2] = {TierHealth{0, 0, 2, 0}, TierHealth{0, 0, 2, 2}};
  compute_tier_loads(two, 2, 1.4, 0.5, out);
  CHECK(out[0].load == 0);
  CHECK(out[1].load == Approx(100));
  CHECK(out[1].panic);
  CHECK_FALSE(out[1].last_resort);
  // Nothing reachable anywhere: the first tier with endpoints, over all of them.
  TierHealth none[2] = {TierHealth{0, 0, 2, 0}, TierHealth{0, 0, 2, 0}};
  compute_tier_loads(none, 2, 1.4, 0.5, out);
  CHECK(out[0].load == Approx(100));
  CHECK(out[0].last_resort);
}

TEST_CASE("ActiveActive, every cluster but one unreachable: all traffic to the last one, none to the dead", "[routing]") {
  auto s = service("svc", {cluster(kC1, endpoints(1, "10.1.0.")), cluster(kC2, endpoints(1, "10.2.0.")),
                           cluster(kC3, endpoints(1, "10.3.0.")), cluster(kLocal, endpoints(1, "10.0.0."))});
  s.policy.lb_type = config::LbType::active_active;
  s.policy.targets = {target(kC1, 40), target(kC2, 30), target(kC3, 20), target(kLocal, 10)};
  Harness h(model_of({s}));
  const auto& svc = h.table.load()->services[0];
  // One connect failure each takes the three out at default settings (local-origin, never capped).
  for (const auto& e : svc.endpoints) {
    if (e.address == "10.0.0.1") continue;
    record_outcome(svc, e, Outcome::connect_failure, to_ticks(h.clock.now));
  }
  auto counts = by_cluster(h, "svc", 1000);
  CHECK(counts[kLocal] == 1000);
  // A 5xx-ejection of the last one is an opinion: panic brings it back, never the dead ones.
  eject(h, "10.0.0.1");
  counts = by_cluster(h, "svc", 1000);
  CHECK(counts[kLocal] == 1000);
}

TEST_CASE("a cluster whose endpoints all answer 503 goes as a whole, whatever the cap", "[routing]") {
  auto s = service("svc", {cluster(kC1, endpoints(2, "10.1.0.")), cluster(kC3, endpoints(8, "10.3.0."))});
  s.policy.lb_type = config::LbType::active_active;
  s.policy.targets = {target(kC1, 50), target(kC3, 50)};
  s.outlier_detection.max_ejection_percent = 10;  // 1 of 10
  Harness h(model_of({s}));
  const auto& svc = h.table.load()->services[0];
  const auto now = to_ticks(h.clock.now);
  for (int round = 0; round < 3; ++round) {
    for (std::uint32_t i = 0; i < 2; ++i) record_outcome(svc, svc.endpoints[i], Outcome::gateway_error, now);
  }
  CHECK(ejected_count(svc, now) == 2);
  CHECK(by_cluster(h, "svc", 1000)[kC3] == 1000);
}
