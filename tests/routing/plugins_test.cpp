// Routing plugins: a registered load-balancing policy and multi-cluster policy decide picks for the
// services that name them; unknown names fall back to the built-ins and are reported.
#include <catch2/catch.hpp>

#include <atomic>

#include "fixtures.hpp"
#include "routing/plugins.hpp"

using namespace sluice;
using namespace sluice::routing;
using namespace sluice::routing::test;

namespace {

// Always the candidate with the highest port; counts outcomes it is told about.
struct HighestPort final : SimpleLoadBalancingPolicy {
  explicit HighestPort(std::atomic<int>* told) : told_(told) {}
  int choose(const LbRequest&, std::span<const LbEndpoint> candidates) override {
    int best = 0;
    for (std::size_t i = 1; i < candidates.size(); ++i) {
      if (candidates[i].port > candidates[static_cast<std::size_t>(best)].port) best = static_cast<int>(i);
    }
    return best;
  }
  void finished(const LbEndpoint&, bool ok, std::chrono::nanoseconds) override {
    if (ok) told_->fetch_add(1);
  }
  std::atomic<int>* told_;
};

// Through the full interface, as the built-ins are written: the allowed candidate with the fewest picks
// so far, counted in the candidates' balance (kept by the view), ties to the lowest index.
struct FewestPicks final : LoadBalancingPolicy {
  int pick(const LbRequest&, LbTier& tier) override {
    int best = -1;
    for (std::size_t k = 0; k < tier.size(); ++k) {
      if (!tier.allowed(k)) continue;
      if (best < 0 || tier[k].balance < tier[static_cast<std::size_t>(best)].balance) best = static_cast<int>(k);
    }
    if (best >= 0) tier[static_cast<std::size_t>(best)].balance += 1;
    return best;
  }
};

// Ignores what the pick may not use: always the first candidate.
struct AlwaysFirst final : LoadBalancingPolicy {
  int pick(const LbRequest&, LbTier&) override { return 0; }
};

// Puts cluster-2 alone in tier 0 and leaves every other cluster out.
struct OnlyCluster2 final : MultiClusterPolicy {
  void place(const config::Service&, std::string_view, std::span<const ClusterInfo> clusters,
             std::span<ClusterPlacement> out) const override {
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      if (clusters[i].key == kC2) out[i] = ClusterPlacement{0, 0};
    }
  }
};

// Two attempts of one request to `service`: the first fails to connect, the second is its retry.
// The first attempt fails in a way that retries but blames no endpoint (a stale pooled connection), so
// the retry shows the exclusion alone.
std::pair<PickResult, PickResult> failed_then_retried(Harness& h, const char* service) {
  auto req = h.request(service);
  AttemptState a;
  auto first = h.picker.pick(req, a, h.clock.now);
  REQUIRE(first.status == PickStatus::ok);
  h.picker.finish(first, Outcome::reset_reused, h.clock.now);
  auto second = h.picker.pick(req, a, h.clock.now);
  REQUIRE(second.status == PickStatus::ok);
  h.picker.finish(second, Outcome::success, h.clock.now);
  return {std::move(first), std::move(second)};
}

config::Service three_ports() {
  return service("web", {cluster(kLocal, {ep("10.0.0.1", 8081), ep("10.0.0.2", 8083), ep("10.0.0.3", 8082)})});
}

}  // namespace

TEST_CASE("plugins: a load-balancing plugin picks for the service that names it", "[routing][plugins]") {
  std::atomic<int> told{0};
  REQUIRE(register_load_balancer("highest-port", [&told](std::string_view) {
    return std::make_unique<HighestPort>(&told);
  }));
  auto svc = three_ports();
  svc.load_balancer_plugin = "highest-port";
  auto other = three_ports();
  other.name = "plain";
  Harness h(model_of({svc, other}));
  auto counts = h.spread("web", 30);
  CHECK(counts["10.0.0.2"] == 30);
  CHECK(told.load() == 30);
  // The service without a plugin keeps round robin.
  auto plain = h.spread("plain", 30);
  CHECK(plain["10.0.0.1"] == 10);
  CHECK(plain["10.0.0.2"] == 10);

  // A retry excludes the tried endpoint: the plugin sees the others only.
  const auto [first, second] = failed_then_retried(h, "web");
  CHECK(first.port == 8083);
  CHECK(second.port == 8082);

  CHECK(missing_plugins({svc}).empty());
  CHECK(unregister_load_balancer("highest-port"));
  REQUIRE(missing_plugins({svc}).size() == 1);
  CHECK(missing_plugins({svc})[0] == "services[0].load_balancer_plugin: no load-balancing plugin registered as \"highest-port\"");
  // Unregistered: the next snapshot falls back to the built-in round robin.
  h.publish(model_of({svc, other}));
  auto fallback = h.spread("web", 30);
  CHECK(fallback["10.0.0.1"] == 10);
}

TEST_CASE("plugins: a multi-cluster plugin places clusters into tiers", "[routing][plugins]") {
  REQUIRE(register_multi_cluster_policy("only-cluster-2", std::make_shared<OnlyCluster2>()));
  auto svc = service("web", {cluster(kLocal, endpoints(2)), cluster(kC1, endpoints(2, "10.1.0.")),
                             cluster(kC2, endpoints(2, "10.2.0."))});
  svc.policy.plugin = "only-cluster-2";
  Harness h(model_of({svc}));
  auto counts = h.spread("web", 20);
  CHECK(counts["10.2.0.1"] == 10);
  CHECK(counts["10.2.0.2"] == 10);
  auto snap = h.table.load();
  CHECK(snap->services[0].multi_cluster_plugin == "only-cluster-2");
  CHECK(snap->services[0].unused_clusters.size() == 2);
  CHECK(unregister_multi_cluster_policy("only-cluster-2"));
  // Unregistered: Locality (the config's lb_type) again.
  h.publish(model_of({svc}));
  auto local = h.spread("web", 20);
  CHECK(local["10.0.0.1"] == 10);
  CHECK(register_load_balancer("", [](std::string_view) { return std::unique_ptr<LoadBalancingPolicy>(); }) == false);
}

TEST_CASE("plugins: the built-in multi-cluster policies are registry entries, selectable by name",
          "[routing][plugins]") {
  for (const char* name : {"Locality", "ActiveActive", "FailOver"}) {
    INFO(name);
    CHECK(find_multi_cluster_policy(name) != nullptr);
  }
  CHECK(find_multi_cluster_policy("failover") == nullptr);  // names are exact
  config::TrafficPolicy p;
  p.lb_type = config::LbType::fail_over;
  CHECK(resolve_multi_cluster_policy(p) == find_multi_cluster_policy("FailOver"));
  p.plugin = "not-registered";
  CHECK(resolve_multi_cluster_policy(p) == find_multi_cluster_policy("FailOver"));

  // "plugin": "FailOver" on a Locality service: the built-in FailOver places it (no targets: every
  // remote cluster is the backup tier), and it is no missing plugin.
  auto svc = service("web", {cluster(kLocal, {}), cluster(kC1, endpoints(2, "10.1.0."))});
  Harness locality(model_of({svc}));
  CHECK(locality.spread("web", 4)[""] == 4);  // Locality: no local endpoint, nothing to pick
  svc.policy.plugin = "FailOver";
  CHECK(missing_plugins({svc}).empty());
  Harness failover(model_of({svc}));
  auto counts = failover.spread("web", 4);
  CHECK(counts["10.1.0.1"] == 2);
  CHECK(counts["10.1.0.2"] == 2);
}

TEST_CASE("plugins: a program may replace a built-in multi-cluster policy; unregistering restores it",
          "[routing][plugins]") {
  // Every service without a policy is Locality: replaced, they all go to cluster-2 instead.
  REQUIRE(register_multi_cluster_policy("Locality", std::make_shared<OnlyCluster2>()));
  auto svc = service("web", {cluster(kLocal, endpoints(1)), cluster(kC2, endpoints(1, "10.2.0."))});
  Harness h(model_of({svc}));
  CHECK(h.spread("web", 4)["10.2.0.1"] == 4);
  CHECK(unregister_multi_cluster_policy("Locality"));
  CHECK(find_multi_cluster_policy("Locality") != nullptr);
  h.publish(model_of({svc}));
  CHECK(h.spread("web", 4)["10.0.0.1"] == 4);
  CHECK_FALSE(unregister_multi_cluster_policy("Locality"));  // the built-in itself cannot go
}

TEST_CASE("plugins: the built-in load balancers are registry entries, selectable by name", "[routing][plugins]") {
  CHECK(builtin_load_balancer("RoundRobin") == config::LoadBalancer::round_robin);
  CHECK(builtin_load_balancer("Random") == config::LoadBalancer::random);
  CHECK(builtin_load_balancer("LeastWork") == config::LoadBalancer::least_work);
  CHECK(builtin_load_balancer("HashingLoadBalancer") == config::LoadBalancer::hashing);
  CHECK_FALSE(builtin_load_balancer("lowest-latency"));
  for (const char* name : {"RoundRobin", "Random", "LeastWork", "Hashing", "LeastWorkLoadBalancer"}) {
    INFO(name);
    auto found = find_load_balancer(name);
    REQUIRE(found != nullptr);
    CHECK(found->builtin);
    // One shared instance for every worker and service: the built-ins keep their state in the tier.
    CHECK(found->make("a.default") == found->make("b.default"));
  }
  CHECK(find_load_balancer("LeastWorkLoadBalancer") == find_load_balancer("LeastWork"));
  CHECK(find_load_balancer("roundrobin") == nullptr);  // names are exact

  auto svc = three_ports();
  svc.load_balancer_plugin = "LeastWork";
  CHECK(missing_plugins({svc}).empty());
  Harness h(model_of({svc}));
  auto snap = h.table.load();
  CHECK(snap->services[0].load_balancer == config::LoadBalancer::least_work);
  REQUIRE(snap->services[0].lb_plugin != nullptr);
  CHECK(snap->services[0].lb_plugin == find_load_balancer("LeastWork"));
}

TEST_CASE("plugins: a policy written against the full interface keeps its state in the tier",
          "[routing][plugins]") {
  REQUIRE(register_load_balancer("fewest-picks", [](std::string_view) { return std::make_unique<FewestPicks>(); }));
  auto svc = three_ports();
  svc.load_balancer_plugin = "fewest-picks";
  Harness h(model_of({svc}));
  // The balances start staggered in [0, weight): after the first round each candidate was picked once,
  // and from then on they take turns.
  auto counts = h.spread("web", 30);
  CHECK(counts["10.0.0.1"] == 10);
  CHECK(counts["10.0.0.2"] == 10);
  CHECK(counts["10.0.0.3"] == 10);
  // A retry: the tried endpoint is not allowed, whatever its balance.
  const auto [first, second] = failed_then_retried(h, "web");
  CHECK(second.address != first.address);
  CHECK(unregister_load_balancer("fewest-picks"));
}

TEST_CASE("plugins: a policy's choice of a candidate it may not use is refused", "[routing][plugins]") {
  REQUIRE(register_load_balancer("always-first", [](std::string_view) { return std::make_shared<AlwaysFirst>(); }));
  auto svc = three_ports();
  svc.load_balancer_plugin = "always-first";
  svc.retry.max_pending_per_endpoint = 1;
  Harness h(model_of({svc}));
  auto req = h.request("web");
  AttemptState a1, a2;
  auto held = h.picker.pick(req, a1, h.clock.now);
  REQUIRE(held.status == PickStatus::ok);
  // The first candidate is at its pending limit: the policy insists on it, and the pick refuses.
  auto next = h.picker.pick(req, a2, h.clock.now);
  CHECK(next.status == PickStatus::overloaded);
  h.picker.finish(next, Outcome::success, h.clock.now);
  h.picker.finish(held, Outcome::success, h.clock.now);
  CHECK(unregister_load_balancer("always-first"));
}

TEST_CASE("plugins: a program may replace a built-in load balancer; unregistering restores it",
          "[routing][plugins]") {
  std::atomic<int> told{0};
  REQUIRE(register_load_balancer("RoundRobin", [&told](std::string_view) { return std::make_unique<HighestPort>(&told); }));
  // Every round-robin service (the default), whichever spelling selects it, now picks the highest port.
  auto plain = three_ports();
  auto spelled = three_ports();
  spelled.name = "spelled";
  spelled.load_balancer_plugin = "RoundRobinLoadBalancer";
  Harness h(model_of({plain, spelled}));
  CHECK(h.spread("web", 9)["10.0.0.2"] == 9);
  CHECK(h.spread("spelled", 9)["10.0.0.2"] == 9);
  CHECK(told.load() == 18);  // a replacement is told outcomes, as any plugin
  CHECK(unregister_load_balancer("RoundRobin"));
  CHECK(find_load_balancer("RoundRobin")->builtin);
  h.publish(model_of({plain, spelled}));
  auto counts = h.spread("web", 9);
  CHECK(counts["10.0.0.1"] == 3);
  CHECK(counts["10.0.0.2"] == 3);
  CHECK_FALSE(unregister_load_balancer("RoundRobin"));  // the built-in itself cannot go
}
