// Routing micro-benchmarks (Google Benchmark): route lookup + endpoint pick on a 10k-service table, on one
// and two threads, and the rebuild + publication of a 10k-service / 100k-endpoint snapshot.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "routing/model.hpp"
#include "routing/picker.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

using namespace sluice;
using namespace sluice::routing;

namespace {

constexpr int kServices = 10000;
constexpr int kEndpointsPerService = 10;

Model make_model(int services, int endpoints_per_service) {
  Model m;
  m.local.name = "local";
  m.services.reserve(static_cast<std::size_t>(services));
  m.routes.reserve(static_cast<std::size_t>(services));
  for (int s = 0; s < services; ++s) {
    config::Service svc;
    svc.name = "svc-" + std::to_string(s);
    svc.name_space = "default";
    svc.ports = {8080};
    config::ClusterEndpoints local;
    local.cluster = m.local.key();
    for (int e = 0; e < endpoints_per_service; ++e) {
      config::Endpoint ep;
      ep.address = "10." + std::to_string(s / 256) + "." + std::to_string(s % 256) + "." + std::to_string(e);
      ep.port = 8080;
      local.endpoints.push_back(std::move(ep));
    }
    svc.clusters.push_back(std::move(local));
    config::Route r;
    r.hosts = {svc.name + ".default", svc.name};
    r.service = svc.id();
    m.services.push_back(std::move(svc));
    m.routes.push_back(std::move(r));
  }
  return m;
}

// One table shared by every benchmark thread, built once.
struct World {
  World() {
    model = make_model(kServices, kEndpointsPerService);
    table.publish(build_snapshot(model, registry, Clock::now()));
    for (int s = 0; s < kServices; ++s) hosts.push_back("svc-" + std::to_string(s) + ".default:8080");
  }
  Model model;
  EndpointRegistry registry;
  Table table;
  std::vector<std::string> hosts;
};

World& world() {
  static World w;
  return w;
}

void BM_LookupPick(benchmark::State& state) {
  World& w = world();
  Picker picker(w.table, 7 + static_cast<std::uint64_t>(state.thread_index()));
  RequestView req;
  req.listener = "main";
  req.target = "/api/v1/items?id=42";
  req.method = "GET";
  req.client_address = "192.0.2.1";
  PickResult result;
  AttemptState attempt;
  const Clock::time_point now = Clock::now();
  // Threads walk the services with different strides so they do not share cache lines in lockstep.
  const std::size_t spread = static_cast<std::size_t>(state.range(0));  // distinct services visited
  std::size_t i = static_cast<std::size_t>(state.thread_index()) * 4999;
  const std::size_t stride = 7919;
  for (auto _ : state) {
    req.host = w.hosts[i % spread];
    i += stride;
    attempt.attempt = 0;
    attempt.tried.clear();
    attempt.tried_tokens.clear();
    picker.pick_into(req, attempt, result, now);
    picker.finish(result, Outcome::success, now);
    benchmark::DoNotOptimize(result.port);
  }
  if (result.status != PickStatus::ok) state.SkipWithError("pick failed");
}
// Argument: how many distinct services the requests cycle through (10000: every request a cold service).
BENCHMARK(BM_LookupPick)->Arg(kServices)->Threads(1)->UseRealTime();
BENCHMARK(BM_LookupPick)->Arg(kServices)->Threads(2)->UseRealTime();
BENCHMARK(BM_LookupPick)->Arg(100)->Threads(1)->UseRealTime();
BENCHMARK(BM_LookupPick)->Arg(100)->Threads(2)->UseRealTime();

// Steady state: the registry already holds every endpoint (the common rebuild after a small change).
void BM_RebuildPublish(benchmark::State& state) {
  World& w = world();
  for (auto _ : state) {
    auto snap = build_snapshot(w.model, w.registry, Clock::now());
    w.table.publish(std::move(snap));
  }
  state.counters["services"] = kServices;
  state.counters["endpoints"] = kServices * kEndpointsPerService;
}
BENCHMARK(BM_RebuildPublish)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
