// Embeds Sluice: a proxy on 127.0.0.1:LISTEN_PORT whose service "web" is balanced by a custom policy,
// "lowest-latency" (each endpoint is tried once, then the one with the lowest average latency wins),
// over endpoints this program publishes itself: FAST_PORT in the local cluster, SLOW_PORT in a second
// cluster whose requests go to "/delay/<SLOW_MS>" (sluice-testbackend sleeps that long).
//
// Usage: embedded LISTEN_PORT FAST_PORT SLOW_PORT [SLOW_MS]. Prints "ready", serves until stdin
// closes, then drains and prints its stats.
#include <iostream>
#include <map>
#include <mutex>
#include <string>

#include <sluice/sluice.hpp>

namespace {

// Average latency per endpoint token, shared by the per-worker policy instances.
struct Latencies {
  std::mutex mutex;
  std::map<std::uint64_t, double> average_ms;
  std::uint64_t picks = 0;
};

class LowestLatency final : public sluice::routing::SimpleLoadBalancingPolicy {
 public:
  explicit LowestLatency(Latencies& shared) : shared_(shared) {}

  int choose(const sluice::routing::LbRequest&, std::span<const sluice::routing::LbEndpoint> candidates) override {
    std::lock_guard lock(shared_.mutex);
    ++shared_.picks;
    int best = -1;
    double best_ms = 0;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
      auto it = shared_.average_ms.find(candidates[i].token);
      if (it == shared_.average_ms.end()) return static_cast<int>(i);  // never measured: try it
      if (best < 0 || it->second < best_ms) {
        best = static_cast<int>(i);
        best_ms = it->second;
      }
    }
    return best;
  }

  void finished(const sluice::routing::LbEndpoint& endpoint, bool ok, std::chrono::nanoseconds latency) override {
    const double ms = ok ? std::chrono::duration<double, std::milli>(latency).count() : 1e9;
    std::lock_guard lock(shared_.mutex);
    auto [it, fresh] = shared_.average_ms.try_emplace(endpoint.token, ms);
    if (!fresh) it->second = 0.7 * it->second + 0.3 * ms;
  }

 private:
  Latencies& shared_;
};

sluice::config::Endpoint endpoint(std::uint16_t port) {
  sluice::config::Endpoint e;
  e.address = "127.0.0.1";
  e.port = port;
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: embedded LISTEN_PORT FAST_PORT SLOW_PORT [SLOW_MS]\n";
    return 2;
  }
  const std::string listen_port = argv[1];
  const auto fast_port = static_cast<std::uint16_t>(std::stoi(argv[2]));
  const auto slow_port = static_cast<std::uint16_t>(std::stoi(argv[3]));
  const std::string slow_ms = argc > 4 ? argv[4] : "100";

  // 1. The plugin, registered before the config that names it is loaded.
  Latencies latencies;
  sluice::routing::register_load_balancer("lowest-latency", [&latencies](std::string_view) {
    return std::make_unique<LowestLatency>(latencies);
  });

  // 2. The proxy: one listener, one worker, service "web" routed from every host, no endpoints yet.
  const std::string config = R"({
    "cluster": {"name": "local"}, "workers": 1, "admin": {"enabled": false},
    "listeners": [{"name": "http", "address": "127.0.0.1", "port": )" + listen_port + R"(}],
    "services": [{"name": "web", "load_balancer_plugin": "lowest-latency",
                  "policy": {"lb_type": "ActiveActive"}, "slow_start_window": "0s"}],
    "routes": [{"hosts": ["*"], "service": "web.default"}]})";
  std::vector<std::string> errors;
  auto proxy = sluice::Proxy::from_json(config, errors);
  if (proxy) errors = proxy->start();
  for (const auto& e : errors) std::cerr << "embedded: " << e << "\n";
  if (!errors.empty()) return 1;

  // 3. Endpoints from our own code: a fast local backend and a slow one in another cluster.
  sluice::routing::Model model = proxy->config_model();
  auto& web = model.services.at(0);
  web.clusters.resize(2);
  web.clusters[0].cluster = "default/default/default/local";
  web.clusters[0].endpoints = {endpoint(fast_port)};
  web.clusters[1].cluster = "default/default/default/slow";
  web.clusters[1].path_prefix = "/delay/" + slow_ms;
  web.clusters[1].endpoints = {endpoint(slow_port)};
  for (const auto& e : proxy->publish(model)) std::cerr << "embedded: " << e << "\n";

  std::cout << "ready" << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
  }

  proxy->drain();
  proxy->wait_drained(std::chrono::seconds(5));
  proxy->stop();
  const sluice::Stats s = proxy->stats();
  std::lock_guard lock(latencies.mutex);
  std::cout << "requests " << s.requests << " 2xx " << s.responses_2xx << " routing_updates " << s.routing_updates
            << " plugin_picks " << latencies.picks << std::endl;
  return 0;
}
