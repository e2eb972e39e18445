// Retry decisions: outcome and method rules, counts, budget, and where a retry goes.
#include <catch2/catch.hpp>

#include "fixtures.hpp"
#include "routing/retry.hpp"

#include <set>

using namespace sluice;
using namespace sluice::routing;
using namespace sluice::routing::test;

TEST_CASE("retriable outcomes by method", "[routing]") {
  CHECK(retriable(Outcome::connect_failure, 0, "POST", true));
  CHECK(retriable(Outcome::reset, 0, "GET", true));
  CHECK_FALSE(retriable(Outcome::reset, 0, "POST", true));
  CHECK(retriable(Outcome::http_5xx, 503, "PUT", true));
  CHECK(retriable(Outcome::http_5xx, 502, "DELETE", true));
  CHECK_FALSE(retriable(Outcome::http_5xx, 500, "GET", true));
  CHECK_FALSE(retriable(Outcome::http_5xx, 503, "POST", true));
  CHECK_FALSE(retriable(Outcome::http_5xx, 503, "GET", false));
  CHECK_FALSE(retriable(Outcome::timeout, 0, "GET", true));
  CHECK_FALSE(retriable(Outcome::success, 200, "GET", true));
  CHECK_FALSE(retriable(Outcome::local_abort, 0, "GET", true));
  CHECK(is_idempotent("OPTIONS"));
  CHECK_FALSE(is_idempotent("PATCH"));
}

TEST_CASE("retries up to max_retries on different endpoints, then falls back to tried ones", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(3))})}));
  auto req = h.request("svc");
  AttemptState a;
  std::set<std::string> seen;
  auto r = h.picker.pick(req, a, h.clock.now);
  seen.insert(r.address);
  CHECK(h.picker.may_retry(r, Outcome::connect_failure, 0, "POST", a));
  h.picker.finish(r, Outcome::connect_failure, h.clock.now);
  r = h.picker.pick(req, a, h.clock.now);
  CHECK(r.retry);
  seen.insert(r.address);
  CHECK(h.picker.may_retry(r, Outcome::connect_failure, 0, "GET", a));
  h.picker.finish(r, Outcome::connect_failure, h.clock.now);
  r = h.picker.pick(req, a, h.clock.now);
  seen.insert(r.address);
  CHECK(seen.size() == 3);
  CHECK_FALSE(h.picker.may_retry(r, Outcome::connect_failure, 0, "GET", a));  // 2 retries done
  h.picker.finish(r, Outcome::connect_failure, h.clock.now);
  // HAProxy: with every endpoint tried, a further pick reuses one rather than failing.
  r = h.picker.pick(req, a, h.clock.now);
  CHECK(r.status == PickStatus::ok);
  h.picker.finish(r, Outcome::success, h.clock.now);
  CHECK(h.table.load()->services[0].state->active_retries.load() == 0);
}

TEST_CASE("retry budget: 20% of active requests, at least 3", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(4))})}));
  const auto& svc = h.table.load()->services[0];
  auto req = h.request("svc");
  std::vector<PickResult> open;
  auto hold = [&](int n, bool retry) {
    for (int i = 0; i < n; ++i) {
      AttemptState a;
      if (retry) a.attempt = 1;  // as if a first attempt had failed
      open.push_back(h.picker.pick(req, a, h.clock.now));
    }
  };
  hold(5, false);
  CHECK(retry_budget(svc) == 3);
  hold(3, true);  // 8 active, 3 retries in flight
  AttemptState fresh;
  auto probe = h.picker.pick(req, fresh, h.clock.now);  // 9 active
  CHECK_FALSE(h.picker.may_retry(probe, Outcome::connect_failure, 0, "GET", fresh));
  CHECK(svc.state->budget_exhausted.load() == 1);
  hold(20, false);  // 29 active -> 20% = 5
  CHECK(retry_budget(svc) == 5);
  CHECK(h.picker.may_retry(probe, Outcome::connect_failure, 0, "GET", fresh));
  h.picker.finish(probe, Outcome::success, h.clock.now);
  for (auto& r : open) h.picker.finish(r, Outcome::success, h.clock.now);
  CHECK(svc.active_requests() == 0);
  CHECK(svc.state->active_retries.load() == 0);
}

TEST_CASE("a retry after a remote cluster's failure goes to another cluster", "[routing]") {
  auto s = service("svc", {cluster(kC1, endpoints(3, "10.1.0."), "/svc"), cluster(kC3, endpoints(1, "10.3.0."), "/svc")});
  s.policy.lb_type = config::LbType::active_active;
  Harness h(model_of({s}));
  auto req = h.request("svc");
  for (int i = 0; i < 50; ++i) {
    AttemptState a;
    auto first = h.picker.pick(req, a, h.clock.now);
    h.picker.finish(first, Outcome::connect_failure, h.clock.now);
    auto second = h.picker.pick(req, a, h.clock.now);
    REQUIRE(second.status == PickStatus::ok);
    CHECK(second.cluster != first.cluster);
    h.picker.finish(second, Outcome::success, h.clock.now);
  }
}

TEST_CASE("FailOver: a retry leaves a local tier with one endpoint for the next tier", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(1, "10.0.0.")), cluster(kC1, endpoints(2, "10.1.0."), "/svc")});
  s.policy.lb_type = config::LbType::fail_over;
  s.policy.targets = {config::PolicyTarget{kC1, std::nullopt}};
  Harness h(model_of({s}));
  AttemptState a;
  auto first = h.picker.pick(h.request("svc"), a, h.clock.now);
  CHECK(first.cluster == kLocal);
  h.picker.finish(first, Outcome::connect_failure, h.clock.now);
  auto second = h.picker.pick(h.request("svc"), a, h.clock.now);
  CHECK(second.cluster == kC1);
  CHECK(second.tier == 1);
  CHECK(second.upstream_target == "/svc/");
  h.picker.finish(second, Outcome::success, h.clock.now);
}

TEST_CASE("pending-request limit: overloaded when every endpoint is full", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(2))});
  s.retry.max_pending_per_endpoint = 2;
  Harness h(model_of({s}));
  std::vector<PickResult> open;
  auto req = h.request("svc");
  for (int i = 0; i < 4; ++i) {
    AttemptState a;
    open.push_back(h.picker.pick(req, a, h.clock.now));
    CHECK(open.back().status == PickStatus::ok);
  }
  AttemptState a;
  auto full = h.picker.pick(req, a, h.clock.now);
  CHECK(full.status == PickStatus::overloaded);
  CHECK_FALSE(full.reason.empty());
  h.picker.finish(open[0], Outcome::success, h.clock.now);
  auto again = h.picker.pick(req, a, h.clock.now);
  CHECK(again.status == PickStatus::ok);
  CHECK(again.address == open[0].address);
  h.picker.finish(again, Outcome::success, h.clock.now);
  for (std::size_t i = 1; i < open.size(); ++i) h.picker.finish(open[i], Outcome::success, h.clock.now);
}
