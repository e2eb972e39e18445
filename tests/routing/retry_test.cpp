// Retry decisions: outcome and method rules, counts, budget, and where a retry goes.
#include <catch2/catch.hpp>

#include "fixtures.hpp"
#include "routing/health.hpp"
#include "routing/retry.hpp"

#include <set>

using namespace sluice;
using namespace sluice::routing;
using namespace sluice::routing::test;

namespace {

// Picks `n` requests as budgeted retries (as if their first attempt had got a 503) and leaves them in
// flight: each holds the retry budget until finished.
std::vector<PickResult> hold_budgeted_retries(Harness& h, const RequestView& req, int n) {
  std::vector<PickResult> open;
  for (int i = 0; i < n; ++i) {
    AttemptState b;
    b.attempt = 1;
    b.next = RetryKind::budgeted;
    open.push_back(h.picker.pick(req, b, h.clock.now));
  }
  return open;
}

}  // namespace

TEST_CASE("retry kinds by outcome and method", "[routing]") {
  const config::RetryPolicy p;
  CHECK(retry_kind(Outcome::connect_failure, "POST", false, p) == RetryKind::local);
  CHECK(retry_kind(Outcome::reset, "GET", true, p) == RetryKind::local);
  CHECK(retry_kind(Outcome::reset_reused, "GET", true, p) == RetryKind::local);
  CHECK(retry_kind(Outcome::reset, "POST", true, p) == RetryKind::none);
  CHECK(retry_kind(Outcome::reset, "GET", false, p) == RetryKind::none);  // part of the body went upstream
  CHECK(retry_kind(Outcome::gateway_error, "PUT", true, p) == RetryKind::budgeted);
  CHECK(retry_kind(Outcome::gateway_error, "POST", true, p) == RetryKind::none);
  CHECK(retry_kind(Outcome::http_5xx, "GET", true, p) == RetryKind::none);  // 500: the application's answer
  CHECK(retry_kind(Outcome::timeout, "GET", true, p) == RetryKind::budgeted);
  CHECK(retry_kind(Outcome::timeout, "POST", true, p) == RetryKind::none);
  CHECK(retry_kind(Outcome::success, "GET", true, p) == RetryKind::none);
  CHECK(retry_kind(Outcome::local_abort, "GET", true, p) == RetryKind::none);
  config::RetryPolicy off;
  off.retry_on_5xx = false;
  off.retry_on_timeout = false;
  CHECK(retry_kind(Outcome::gateway_error, "GET", true, off) == RetryKind::none);
  CHECK(retry_kind(Outcome::timeout, "GET", true, off) == RetryKind::none);
  CHECK(outcome_of_status(503) == Outcome::gateway_error);
  CHECK(outcome_of_status(500) == Outcome::http_5xx);
  CHECK(outcome_of_status(404) == Outcome::success);
  CHECK(is_idempotent("OPTIONS"));
  CHECK_FALSE(is_idempotent("PATCH"));
}

TEST_CASE("budgeted retries up to max_retries on different endpoints, then falls back to tried ones", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(3))});
  s.outlier_detection.enabled = false;  // the same endpoints stay candidates
  Harness h(model_of({s}));
  auto req = h.request("svc");
  AttemptState a;
  std::set<std::string> seen;
  auto r = h.picker.pick(req, a, h.clock.now);
  seen.insert(r.address);
  CHECK(h.picker.may_retry(r, Outcome::gateway_error, "GET", true, a, h.clock.now));
  h.picker.finish(r, Outcome::gateway_error, h.clock.now);
  r = h.picker.pick(req, a, h.clock.now);
  CHECK(r.retry);
  seen.insert(r.address);
  CHECK(h.picker.may_retry(r, Outcome::timeout, "GET", true, a, h.clock.now));
  h.picker.finish(r, Outcome::timeout, h.clock.now);
  r = h.picker.pick(req, a, h.clock.now);
  seen.insert(r.address);
  CHECK(seen.size() == 3);
  CHECK_FALSE(h.picker.may_retry(r, Outcome::gateway_error, "GET", true, a, h.clock.now));  // 2 retries done
  // Every endpoint had its attempt: a connect failure now leaves nothing live to try; a stale pooled
  // connection proves nothing about its endpoint and is retried.
  CHECK_FALSE(h.picker.may_retry(r, Outcome::connect_failure, "GET", true, a, h.clock.now));
  CHECK(h.picker.may_retry(r, Outcome::reset_reused, "GET", true, a, h.clock.now));
  h.picker.finish(r, Outcome::reset_reused, h.clock.now);
  // HAProxy: with every endpoint tried, a further pick reuses one rather than failing.
  r = h.picker.pick(req, a, h.clock.now);
  CHECK(r.status == PickStatus::ok);
  CHECK_FALSE(r.retry);  // a local retry holds no budget
  h.picker.finish(r, Outcome::success, h.clock.now);
  CHECK(h.table.load()->services[0].state->active_retries.load() == 0);
}

TEST_CASE("local-origin retries: no budget, each endpoint once, and the dead are skipped", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(4))})}));
  const auto& svc = h.table.load()->services[0];
  auto req = h.request("svc");
  // Hold many budgeted retries in flight: the budget is spent.
  std::vector<PickResult> open = hold_budgeted_retries(h, req, 5);
  AttemptState a;
  std::set<std::string> tried;
  auto r = h.picker.pick(req, a, h.clock.now);
  CHECK_FALSE(h.picker.may_retry(r, Outcome::gateway_error, "GET", true, a, h.clock.now));  // budget
  CHECK(svc.state->budget_exhausted.load() == 1);
  for (int i = 0; i < 3; ++i) {
    tried.insert(r.address);
    REQUIRE(h.picker.may_retry(r, Outcome::connect_failure, "GET", true, a, h.clock.now));
    h.picker.finish(r, Outcome::connect_failure, h.clock.now);
    r = h.picker.pick(req, a, h.clock.now);
    REQUIRE(r.status == PickStatus::ok);
    CHECK(tried.count(r.address) == 0);  // the tried (and now ejected) ones are skipped
  }
  tried.insert(r.address);
  CHECK(tried.size() == 4);
  // The fourth refuses too: every endpoint had its attempt and each was taken out at its first failure.
  CHECK_FALSE(h.picker.may_retry(r, Outcome::connect_failure, "GET", true, a, h.clock.now));
  h.picker.finish(r, Outcome::connect_failure, h.clock.now);
  CHECK(ejected_count(svc, to_ticks(h.clock.now)) == 4);
  for (auto& o : open) h.picker.finish(o, Outcome::success, h.clock.now);
  CHECK(svc.state->active_retries.load() == 0);
  CHECK(svc.state->local_retries_total.load() == 3);
}

TEST_CASE("retry budget: 20% of active requests, at least 3", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(4))})}));
  const auto& svc = h.table.load()->services[0];
  auto req = h.request("svc");
  std::vector<PickResult> open;
  auto hold = [&](int n, bool retry) {
    if (retry) {
      for (auto& r : hold_budgeted_retries(h, req, n)) open.push_back(std::move(r));
      return;
    }
    for (int i = 0; i < n; ++i) {
      AttemptState a;
      open.push_back(h.picker.pick(req, a, h.clock.now));
    }
  };
  hold(5, false);
  CHECK(retry_budget(svc) == 3);
  hold(3, true);  // 8 active, 3 retries in flight
  AttemptState fresh;
  auto probe = h.picker.pick(req, fresh, h.clock.now);  // 9 active
  CHECK_FALSE(h.picker.may_retry(probe, Outcome::gateway_error, "GET", true, fresh, h.clock.now));
  CHECK(svc.state->budget_exhausted.load() == 1);
  hold(20, false);  // 29 active -> 20% = 5
  CHECK(retry_budget(svc) == 5);
  CHECK(h.picker.may_retry(probe, Outcome::gateway_error, "GET", true, fresh, h.clock.now));
  h.picker.finish(probe, Outcome::success, h.clock.now);
  for (auto& r : open) h.picker.finish(r, Outcome::success, h.clock.now);
  CHECK(svc.active_requests() == 0);
  CHECK(svc.state->active_retries.load() == 0);
}

TEST_CASE("a retry after a remote cluster's failure goes to another cluster", "[routing]") {
  auto s = service("svc", {cluster(kC1, endpoints(3, "10.1.0."), "/svc"), cluster(kC3, endpoints(1, "10.3.0."), "/svc")});
  s.policy.lb_type = config::LbType::active_active;
  s.outlier_detection.enabled = false;  // the steering alone, not the ejections
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

TEST_CASE("a retry after the failed endpoint was ejected holds no budget", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(4))})}));
  const auto& svc = h.table.load()->services[0];
  auto req = h.request("svc");
  // The budget is spent: 3 budgeted retries in flight (the minimum), few requests active.
  std::vector<PickResult> open = hold_budgeted_retries(h, req, 3);
  // A 503 from an endpoint in rotation: refused by the budget.
  AttemptState a;
  auto r = h.picker.pick(req, a, h.clock.now);
  h.picker.finish(r, Outcome::gateway_error, h.clock.now);
  CHECK_FALSE(h.picker.may_retry(r, Outcome::gateway_error, "GET", true, a, h.clock.now));
  // Its third 503 in a row ejects it: that failure is the endpoint's, and its retry holds no budget.
  for (int i = 0; i < 2; ++i) record_outcome(svc, *r.endpoint, Outcome::gateway_error, to_ticks(h.clock.now));
  REQUIRE(r.endpoint->state->ejected_until.load() > to_ticks(h.clock.now));
  AttemptState c;
  CHECK(h.picker.may_retry(r, Outcome::gateway_error, "GET", true, c, h.clock.now));
  CHECK(c.next == RetryKind::ejected_endpoint);
  auto next = h.picker.pick(req, c, h.clock.now);
  CHECK(next.status == PickStatus::ok);
  CHECK_FALSE(next.retry);  // holds no budget
  CHECK(next.endpoint != r.endpoint);
  h.picker.finish(next, Outcome::success, h.clock.now);
  for (auto& o : open) h.picker.finish(o, Outcome::success, h.clock.now);
  CHECK(svc.state->active_retries.load() == 0);
}
