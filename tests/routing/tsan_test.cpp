// Concurrency: reader threads pick and finish while a writer publishes thousands of snapshots and feeds
// health-check verdicts. Built as its own program so that a ThreadSanitizer build can run it alone
// (tests/routing/run_tsan.sh). Checks: no torn read (every field of a pick comes from one snapshot),
// generations never go backwards for a reader, counters return to zero.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "routing/model.hpp"
#include "routing/picker.hpp"
#include "routing/publisher.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

using namespace sluice;
using namespace sluice::routing;

namespace {

// Version v's model: every field a pick returns encodes v, so a mix of two snapshots shows.
Model model_for(unsigned v) {
  config::Service s;
  s.name = "svc";
  s.load_balancer = static_cast<config::LoadBalancer>(v % 4);
  s.session_sticky.enabled = v % 3 == 0;
  s.outlier_detection.max_ejection_percent = 50;
  s.policy.lb_type = v % 2 ? config::LbType::fail_over : config::LbType::active_active;
  config::ClusterEndpoints local;
  local.cluster = "default/default/default/local";
  config::ClusterEndpoints remote;
  remote.cluster = "default/default/default/cluster-1";
  remote.path_prefix = "/v" + std::to_string(v);
  for (unsigned i = 0; i < 1 + v % 5; ++i) {
    config::Endpoint e;
    e.address = "10." + std::to_string(v % 250) + ".0." + std::to_string(i);
    e.port = static_cast<std::uint16_t>(2000 + v % 1000);
    e.weight = 1 + i;
    local.endpoints.push_back(e);
    e.address = "10." + std::to_string(v % 250) + ".1." + std::to_string(i);
    remote.endpoints.push_back(e);
  }
  s.clusters = {local, remote};
  config::Route r;
  r.hosts = {"svc"};
  r.service = s.id();
  r.host_rewrite = "gen-" + std::to_string(v);
  Model m;
  m.services = {s};
  m.routes = {r};
  return m;
}

// Whether a pick is internally consistent with one version.
bool consistent(const PickResult& r) {
  if (r.host_header.rfind("gen-", 0) != 0) return false;
  const unsigned v = static_cast<unsigned>(std::stoul(r.host_header.substr(4)));
  if (r.port != 2000 + v % 1000) return false;
  const std::string net = "10." + std::to_string(v % 250) + ".";
  if (r.address.rfind(net, 0) != 0) return false;
  if (r.remote && r.upstream_target != "/v" + std::to_string(v) + "/x") return false;
  if (!r.remote && r.upstream_target != "/x") return false;
  return r.route && r.route->host_rewrite == r.host_header && r.endpoint && r.endpoint->address == r.address;
}

}  // namespace

TEST_CASE("readers pick and finish while a writer publishes thousands of snapshots", "[routing][tsan]") {
  constexpr unsigned kSnapshots = 3000;
  constexpr int kReaders = 3;
  Table table;
  EndpointRegistry registry;
  Publisher publisher(table, registry);
  publisher.submit(model_for(0));
  publisher.flush();

  std::atomic<bool> done{false};
  std::atomic<long> picks{0}, torn{0}, backwards{0}, not_ok{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < kReaders; ++t) {
    readers.emplace_back([&, t] {
      Picker picker(table, 1000 + t);
      std::uint64_t last_gen = 0;
      const std::string cookie = "sluice-sticky=0123456789abcdef";
      RequestView req;
      req.listener = "main";
      req.host = "svc";
      req.target = "/x";
      req.method = "GET";
      req.client_address = "192.0.2.7";
      req.header = [&cookie](std::string_view n) { return n == "cookie" ? std::string_view(cookie) : std::string_view(); };
      PickResult reused;
      long n = 0;
      while (!done.load(std::memory_order_acquire) || n < 1000) {
        AttemptState attempt;
        picker.pick_into(req, attempt, reused);
        ++n;
        if (reused.status != PickStatus::ok) {
          ++not_ok;
          continue;
        }
        if (!consistent(reused)) ++torn;
        if (reused.snapshot->generation < last_gen) ++backwards;
        last_gen = reused.snapshot->generation;
        const Outcome o = n % 7 == 0 ? Outcome::gateway_error : Outcome::success;
        const bool retry = picker.may_retry(reused, o, "GET", true, attempt);
        picker.finish(reused, o);
        if (retry) {
          auto again = picker.pick(req, attempt);
          if (again.status == PickStatus::ok && !consistent(again)) ++torn;
          picker.finish(again, Outcome::success);
        }
      }
      picks += n;
    });
  }

  for (unsigned v = 1; v <= kSnapshots; ++v) {
    publisher.submit(model_for(v));
    if (v % 2 == 0) publisher.flush();  // every other submit coalesces with the next
    if (v % 10 == 0) {
      auto snap = table.load();
      for (const auto& ep : snap->services[0].endpoints) {
        registry.set_health_check_result(ep.identity, (v / 10) % 2 == 0, Clock::now());
      }
    }
  }
  publisher.flush();
  done.store(true, std::memory_order_release);
  for (auto& r : readers) r.join();

  CHECK(torn.load() == 0);
  CHECK(backwards.load() == 0);
  CHECK(not_ok.load() == 0);
  CHECK(picks.load() >= kReaders * 1000);
  CHECK(publisher.published() == kSnapshots / 2 + 1);
  CHECK(table.generation() == kSnapshots / 2 + 1);
  auto snap = table.load();
  for (const auto& ep : snap->services[0].endpoints) CHECK(ep.state->active.load() == 0);
  CHECK(snap->services[0].active_requests() == 0);
  CHECK(snap->services[0].state->active_retries.load() == 0);
}
