// Routing micro-benchmarks (Google Benchmark): route lookup + endpoint pick (+ finish) on a 10k-service /
// 100k-endpoint table, on one and two threads, and the rebuild + publication of that snapshot.
//
// Which service each request names matters more than anything else at this size (the table does not fit
// in the CPU caches), so the lookups run under three access patterns over the 10k services:
//   uniform  every request names a service drawn uniformly at random: the worst case, memory-bound
//   zipf     service popularity follows Zipf's law with exponent 1 (the k-th most popular service gets
//            1/k of the weight: the top 100 take ~53% of requests), popular ranks scattered over the table
//   hot100   requests cycle through 100 services (a sidecar talking to a few dependencies)
// The request's Host is taken from a flat array, loaded a few requests ahead: in the proxy the Host was
// just parsed and is in cache; only the routing table's lines should be cold.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "routing/builder.hpp"
#include "routing/picker.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

using namespace sluice;
using namespace sluice::routing;

namespace {

constexpr int kServices = 10000;
constexpr int kEndpointsPerService = 10;
constexpr std::size_t kHostSlot = 32;        // bytes per host in the flat host array
constexpr std::size_t kSequence = 1u << 16;  // precomputed service indices per pattern and thread
constexpr std::size_t kHostAhead = 8;        // requests whose Host is loaded ahead (parsed, in the proxy)

enum Pattern : int { uniform = 0, zipf = 1, hot100 = 2 };

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
    hosts.assign(static_cast<std::size_t>(kServices) * kHostSlot, '\0');
    host_sizes.resize(kServices);
    for (int s = 0; s < kServices; ++s) {
      const std::string h = "svc-" + std::to_string(s) + ".default:8080";
      std::memcpy(&hosts[static_cast<std::size_t>(s) * kHostSlot], h.data(), h.size());
      host_sizes[static_cast<std::size_t>(s)] = static_cast<std::uint8_t>(h.size());
    }
  }
  std::string_view host(std::uint32_t s) const {
    return {&hosts[s * kHostSlot], host_sizes[s]};
  }
  void load_host(std::uint32_t s) const { __builtin_prefetch(&hosts[s * kHostSlot]); }
  Model model;
  EndpointRegistry registry;
  Table table;
  std::vector<char> hosts;
  std::vector<std::uint8_t> host_sizes;
};

World& world() {
  static World w;
  return w;
}

// The service indices a thread's requests name, in order.
std::vector<std::uint32_t> sequence(Pattern p, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::uint32_t> seq(kSequence);
  switch (p) {
    case uniform: {
      std::uniform_int_distribution<std::uint32_t> d(0, kServices - 1);
      for (auto& s : seq) s = d(rng);
      break;
    }
    case zipf: {
      // Rank k (1-based) has weight 1/k; ranks map to services through a fixed random permutation.
      std::vector<double> cumulative(kServices);
      double sum = 0;
      for (int k = 0; k < kServices; ++k) cumulative[static_cast<std::size_t>(k)] = sum += 1.0 / (k + 1);
      std::vector<std::uint32_t> perm(kServices);
      for (std::uint32_t i = 0; i < perm.size(); ++i) perm[i] = i;
      std::mt19937_64 perm_rng(12345);
      std::shuffle(perm.begin(), perm.end(), perm_rng);
      std::uniform_real_distribution<double> d(0, sum);
      for (auto& s : seq) {
        const auto it = std::upper_bound(cumulative.begin(), cumulative.end(), d(rng));
        s = perm[static_cast<std::size_t>(std::min<long>(it - cumulative.begin(), kServices - 1))];
      }
      break;
    }
    case hot100: {
      std::uint32_t i = static_cast<std::uint32_t>(seed) * 37;
      for (auto& s : seq) s = (i++ % 100) * 97;  // 100 services spread over the table
      break;
    }
  }
  return seq;
}

void BM_LookupPick(benchmark::State& state) {
  World& w = world();
  const auto pattern = static_cast<Pattern>(state.range(0));
  const auto seq = sequence(pattern, 7 + static_cast<std::uint64_t>(state.thread_index()));
  Picker picker(w.table, 7 + static_cast<std::uint64_t>(state.thread_index()));
  RequestView req;
  req.listener = "main";
  req.target = "/api/v1/items?id=42";
  req.method = "GET";
  req.client_address = "192.0.2.1";
  PickResult result;
  AttemptState attempt;
  const Clock::time_point now = Clock::now();
  std::size_t i = 0;
  for (auto _ : state) {
    w.load_host(seq[(i + kHostAhead) & (kSequence - 1)]);
    req.host = w.host(seq[i++ & (kSequence - 1)]);
    attempt.attempt = 0;
    attempt.tried_tokens.clear();
    picker.pick_into(req, attempt, result, now);
    picker.finish(result, Outcome::success, now);
    benchmark::DoNotOptimize(result.port);
  }
  if (result.status != PickStatus::ok) state.SkipWithError("pick failed");
}
BENCHMARK(BM_LookupPick)->ArgName("uniform")->Arg(uniform)->Threads(1)->UseRealTime();
BENCHMARK(BM_LookupPick)->ArgName("uniform")->Arg(uniform)->Threads(2)->UseRealTime();
BENCHMARK(BM_LookupPick)->ArgName("zipf")->Arg(zipf)->Threads(1)->UseRealTime();
BENCHMARK(BM_LookupPick)->ArgName("zipf")->Arg(zipf)->Threads(2)->UseRealTime();
BENCHMARK(BM_LookupPick)->ArgName("hot100")->Arg(hot100)->Threads(1)->UseRealTime();
BENCHMARK(BM_LookupPick)->ArgName("hot100")->Arg(hot100)->Threads(2)->UseRealTime();

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
