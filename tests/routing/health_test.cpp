// Endpoint health: outlier ejection and return, max ejection share, active check verdicts, state kept
// across rebuilds, and the registry's retention.
#include <catch2/catch.hpp>

#include "fixtures.hpp"
#include "routing/health.hpp"

using namespace sluice;
using namespace sluice::routing;
using namespace sluice::routing::test;

namespace {

const EndpointEntry& endpoint(Harness& h, const std::string& address, std::size_t svc = 0) {
  auto snap = h.table.load();
  for (const auto& e : snap->services[svc].endpoints) {
    if (e.address == address) return e;
  }
  FAIL("no endpoint " << address);
  throw;
}

// Sends requests until `address` is picked, finishing that attempt with `outcome`, the others with success.
void fail_on(Harness& h, const std::string& address, Outcome outcome, int times) {
  auto req = h.request("svc");
  for (int done = 0, guard = 0; done < times && guard < 10000; ++guard) {
    AttemptState a;
    auto r = h.picker.pick(req, a, h.clock.now);
    REQUIRE(r.status == PickStatus::ok);
    const bool hit = r.address == address;
    h.picker.finish(r, hit ? outcome : Outcome::success, h.clock.now);
    done += hit;
  }
}

}  // namespace

TEST_CASE("defaults: fast local-origin ejection, probes, Envoy elsewhere", "[routing]") {
  config::Service s;
  CHECK(s.outlier_detection.consecutive_local_origin_failures == 1);
  CHECK(s.outlier_detection.consecutive_gateway_failures == 3);
  CHECK(s.outlier_detection.consecutive_failures == 5);
  CHECK(s.outlier_detection.probe_interval == std::chrono::milliseconds(250));
  CHECK(s.outlier_detection.max_probe_interval == std::chrono::milliseconds(1000));
  CHECK(s.outlier_detection.base_ejection_time == std::chrono::milliseconds(30000));
  CHECK(s.outlier_detection.max_ejection_time == std::chrono::milliseconds(300000));
  CHECK(s.outlier_detection.max_ejection_percent == 50);
  CHECK(s.retry.max_retries == 2);
  CHECK(s.retry.budget_percent == 20);
  CHECK(s.retry.min_retry_concurrency == 3);
  CHECK(s.retry.retry_on_timeout);
  CHECK(s.policy.overprovisioning == 1.4);
  CHECK(s.policy.panic_threshold == 0.5);
  CHECK(s.slow_start_window == std::chrono::milliseconds(10000));
  CHECK(kSlowStartMinFactor == 0.1);
}

TEST_CASE("5xx runs eject; without probes the backstop ends it after 30 s times the ejection count", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(3))})}));
  const auto& bad = endpoint(h, "10.0.0.2");
  fail_on(h, "10.0.0.2", Outcome::http_5xx, 4);
  CHECK(bad.state->consecutive_failures.load() == 4);
  fail_on(h, "10.0.0.2", Outcome::success, 1);  // a success resets the run
  CHECK(bad.state->consecutive_failures.load() == 0);
  fail_on(h, "10.0.0.2", Outcome::http_5xx, 5);
  CHECK(bad.state->ejection_count.load() == 1);
  CHECK(bad.state->ejection_reason.load() == EjectionReason::http_5xx);
  CHECK(h.spread("svc", 300).count("10.0.0.2") == 0);

  h.clock.advance(29s);
  CHECK(h.spread("svc", 300).count("10.0.0.2") == 0);
  h.clock.advance(1s + 10s);  // back, and its slow start is over
  CHECK(h.spread("svc", 300)["10.0.0.2"] == 100);
  CHECK(bad.state->service->returns_timer.load() == 1);

  // Second ejection, by gateway errors (3 in a row): 60 s.
  fail_on(h, "10.0.0.2", Outcome::gateway_error, 3);
  CHECK(bad.state->ejection_count.load() == 2);
  CHECK(bad.state->ejection_reason.load() == EjectionReason::gateway_error);
  h.clock.advance(59s);
  CHECK(h.spread("svc", 300).count("10.0.0.2") == 0);
  h.clock.advance(1s);
  CHECK(h.spread("svc", 300).count("10.0.0.2") == 1);  // ramping from 10%
  // local_abort is not the endpoint's fault, and a stale pooled connection proves nothing.
  fail_on(h, "10.0.0.2", Outcome::local_abort, 10);
  fail_on(h, "10.0.0.2", Outcome::reset_reused, 10);
  CHECK(bad.state->consecutive_failures.load() == 0);
  CHECK(bad.state->consecutive_local.load() == 0);
}

TEST_CASE("one local-origin failure ejects, uncapped; probes bring it back with backoff", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(3))})}));
  const auto& svc = h.table.load()->services[0];
  const auto& bad = endpoint(h, "10.0.0.1");
  fail_on(h, "10.0.0.1", Outcome::connect_failure, 1);
  CHECK(bad.state->ejection_reason.load() == EjectionReason::local_origin);
  CHECK(probe_kind(svc, bad) == ProbeKind::connect);
  CHECK(h.spread("svc", 300).count("10.0.0.1") == 0);
  // Not capped: the other two go as well (a reset before any byte is local-origin too).
  fail_on(h, "10.0.0.2", Outcome::reset, 1);
  fail_on(h, "10.0.0.3", Outcome::connect_failure, 1);
  CHECK(ejected_count(svc, to_ticks(h.clock.now)) == 3);

  // Probes: due after 250 ms; a failure doubles the delay (500 ms), up to 1 s.
  CHECK_FALSE(probe_due(bad, to_ticks(h.clock.now + 249ms)));
  h.clock.advance(250ms);
  CHECK(probe_due(bad, to_ticks(h.clock.now)));
  CHECK_FALSE(record_probe(svc, bad, false, false, to_ticks(h.clock.now)));
  CHECK_FALSE(probe_due(bad, to_ticks(h.clock.now + 499ms)));
  CHECK(probe_due(bad, to_ticks(h.clock.now + 500ms)));
  CHECK(probe_delay(svc, 0, 5) == to_ticks(std::chrono::duration_cast<Clock::duration>(1s)));
  // A failed probe pushes the backstop back: 40 s on, still out.
  h.clock.advance(500ms);
  record_probe(svc, bad, false, false, to_ticks(h.clock.now));
  CHECK(bad.state->ejected_until.load() > to_ticks(h.clock.now + 30s));
  // A pass ends it at once, ramping from now.
  h.clock.advance(1s);
  CHECK(record_probe(svc, bad, true, true, to_ticks(h.clock.now)));
  CHECK(bad.state->ejected_until.load() == kNever);
  CHECK(bad.state->ramp_start.load() == to_ticks(h.clock.now));
  CHECK(svc.state->returns_probe.load() == 1);
  CHECK(h.spread("svc", 100)["10.0.0.1"] == 100);  // the only one not ejected

  // Out again within the stable period: flap damping doubles its probe delays.
  fail_on(h, "10.0.0.1", Outcome::connect_failure, 1);
  CHECK(bad.state->damping.load() == 1);
  CHECK_FALSE(probe_due(bad, to_ticks(h.clock.now + 499ms)));
  CHECK(probe_due(bad, to_ticks(h.clock.now + 500ms)));
  // After a long stable stretch the damping decays.
  h.clock.advance(1s);
  record_probe(svc, bad, true, true, to_ticks(h.clock.now));
  h.clock.advance(25s);
  fail_on(h, "10.0.0.1", Outcome::connect_failure, 1);
  CHECK(bad.state->damping.load() == 0);
}

TEST_CASE("an HTTP probe that cannot connect marks an opinion-ejected endpoint dead", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(4))})}));
  const auto& svc = h.table.load()->services[0];
  const auto& bad = endpoint(h, "10.0.0.1");
  fail_on(h, "10.0.0.1", Outcome::gateway_error, 3);
  CHECK(probe_kind(svc, bad) == ProbeKind::http);
  h.clock.advance(250ms);
  record_probe(svc, bad, false, false, to_ticks(h.clock.now));
  CHECK(bad.state->ejection_reason.load() == EjectionReason::local_origin);
  CHECK(probe_kind(svc, bad) == ProbeKind::connect);
}

TEST_CASE("a stalled endpoint (requests in flight, no answer for a second) is avoided", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(2))})}));
  AttemptState a;
  auto stuck = h.picker.pick(h.request("svc"), a, h.clock.now);
  REQUIRE(stuck.status == PickStatus::ok);
  h.clock.advance(1100ms);
  CHECK(h.spread("svc", 100).count(stuck.address) == 0);
  h.picker.responding(stuck, h.clock.now);  // a response head: alive again
  CHECK(h.spread("svc", 100).count(stuck.address) == 1);
  h.picker.finish(stuck, Outcome::success, h.clock.now);
}

TEST_CASE("ejection time is capped by max_ejection_time", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(2))});
  s.outlier_detection.max_ejection_time = std::chrono::seconds(45);
  Harness h(model_of({s}));
  const auto& bad = endpoint(h, "10.0.0.1");
  bad.state->ejection_count.store(5);
  fail_on(h, "10.0.0.1", Outcome::http_5xx, 5);
  CHECK(bad.state->ejected_until.load() == to_ticks(h.clock.now + 45s));
}

TEST_CASE("at most max_ejection_percent of a service is ejected for 5xx, at least one", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(20))});
  s.outlier_detection.max_ejection_percent = 10;  // 2 of 20
  Harness h(model_of({s}));
  for (int i = 1; i <= 4; ++i) fail_on(h, "10.0.0." + std::to_string(i), Outcome::http_5xx, 5);
  CHECK(ejected_count(h.table.load()->services[0], to_ticks(h.clock.now)) == 2);
  CHECK(h.table.load()->services[0].state->ejections_refused.load() >= 2);

  Harness small(model_of({service("svc", {cluster(kLocal, endpoints(2))})}));  // 50% of 2 -> 1
  fail_on(small, "10.0.0.1", Outcome::http_5xx, 5);
  fail_on(small, "10.0.0.2", Outcome::http_5xx, 5);
  CHECK(ejected_count(small.table.load()->services[0], to_ticks(small.clock.now)) == 1);
}

TEST_CASE("outlier detection can be disabled", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(2))});
  s.outlier_detection.enabled = false;
  Harness h(model_of({s}));
  fail_on(h, "10.0.0.1", Outcome::http_5xx, 20);
  CHECK(ejected_count(h.table.load()->services[0], to_ticks(h.clock.now)) == 0);
}

TEST_CASE("active health checks: thresholds, not picked while unhealthy, slow start after", "[routing]") {
  Harness h(model_of({service("svc", {cluster(kLocal, endpoints(2))})}));
  const auto& e = endpoint(h, "10.0.0.1");
  CHECK_FALSE(h.registry.record_health_check("nope", false, 2, 3, h.clock.now));
  CHECK(h.registry.record_health_check(e.identity, false, 2, 3, h.clock.now));
  CHECK(h.registry.record_health_check(e.identity, false, 2, 3, h.clock.now));
  CHECK(h.spread("svc", 10)["10.0.0.1"] == 5);  // two failures < 3: still picked
  h.registry.record_health_check(e.identity, false, 2, 3, h.clock.now);
  CHECK(e.state->health_check.load() == HealthCheckState::unhealthy);
  CHECK(h.spread("svc", 10).count("10.0.0.1") == 0);
  h.registry.record_health_check(e.identity, true, 2, 3, h.clock.now);
  CHECK(h.spread("svc", 10).count("10.0.0.1") == 0);  // one success < 2
  h.registry.record_health_check(e.identity, true, 2, 3, h.clock.now);
  CHECK(e.state->health_check.load() == HealthCheckState::healthy);
  CHECK(h.spread("svc", 110)["10.0.0.1"] == 10);  // ramping: 0.1 vs 1
  h.clock.advance(10s);
  CHECK(h.spread("svc", 10)["10.0.0.1"] == 5);
  CHECK(h.registry.set_health_check_result(e.identity, false, h.clock.now));
  CHECK(h.spread("svc", 10).count("10.0.0.1") == 0);
}

TEST_CASE("state survives rebuilds: counters kept, ejections not forgiven", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(3))});
  s.outlier_detection.max_ejection_percent = 50;
  Harness h(model_of({s}));
  fail_on(h, "10.0.0.1", Outcome::http_5xx, 5);
  fail_on(h, "10.0.0.2", Outcome::http_5xx, 3);
  AttemptState a;
  auto held = h.picker.pick(h.request("svc"), a, h.clock.now);  // in flight across the rebuild
  auto held_state = held.endpoint->state;
  CHECK(held_state->active.load() == 1);

  auto changed = s;
  changed.clusters[0].endpoints.push_back(ep("10.0.0.9"));
  changed.load_balancer = config::LoadBalancer::random;
  h.publish(model_of({changed}));
  CHECK(endpoint(h, "10.0.0.1").state->ejected_until.load() > to_ticks(h.clock.now));
  CHECK(endpoint(h, "10.0.0.2").state->consecutive_failures.load() == 3);
  CHECK(h.spread("svc", 300).count("10.0.0.1") == 0);

  // The held request finishes against the old snapshot and still updates the shared state.
  h.picker.finish(held, Outcome::success, h.clock.now);
  CHECK(held_state->active.load() == 0);

  // Removed and re-added within the retention: the ejection is still there, and it ramps when it returns.
  auto without = s;
  without.clusters[0].endpoints.erase(without.clusters[0].endpoints.begin());
  h.publish(model_of({without}));
  h.clock.advance(1s);
  h.publish(model_of({s}));
  CHECK(endpoint(h, "10.0.0.1").state->ejected_until.load() > to_ticks(h.clock.now));
  CHECK(endpoint(h, "10.0.0.1").state->ramp_start.load() == to_ticks(h.clock.now));
}

TEST_CASE("registry drops state of endpoints gone longer than the retention", "[routing]") {
  auto s = service("svc", {cluster(kLocal, endpoints(3))});
  Harness h(model_of({s}));
  CHECK(h.registry.endpoint_count() == 3);
  auto fewer = s;
  fewer.clusters[0].endpoints.pop_back();
  h.publish(model_of({fewer}));
  CHECK(h.registry.endpoint_count() == 3);  // absent, retained
  h.clock.advance(EndpointRegistry::kRetention + 1s);
  h.picker.pick(h.request("svc"), *std::make_unique<AttemptState>(), h.clock.now);  // let go of old snapshots
  h.publish(model_of({fewer}));
  CHECK(h.registry.endpoint_count() == 2);
}
