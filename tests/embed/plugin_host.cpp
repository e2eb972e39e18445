// A program embedding libsluice for tests/proxy/test_plugins.py: it registers a load-balancing policy, a
// multi-cluster policy and a discovery source of its own and runs a proxy from a config file.
//
// - Multi-cluster policy "reverse-failover": FailOver with the order reversed. The last listed target is
//   tier 0, the one before it tier 1, ..., the local cluster last; unlisted clusters are unused. The
//   built-in FailOver would send everything to the local cluster.
// - Load-balancing policy "last-allowed", written against the full interface (LbTier) as the built-ins
//   are: always the last candidate this pick may use. A retry therefore moves one candidate back.
// - Discovery source "line-feed": reads commands from stdin, one per line,
//     add SERVICE CLUSTER PORT       endpoint 127.0.0.1:PORT of SERVICE ("name.namespace") in CLUSTER
//     remove SERVICE CLUSTER PORT
//   and after each publishes a model with those services (and nothing else), then prints
//   "published N" (N: problems reported) or "bad line". At the end of stdin the program stops.
//   Selected by the config ("sources": ["line-feed"]); without that it is added with Proxy::add_source.
//
// Usage: plugin_host CONFIG [--io-context]. With --io-context the proxy serves on an io_context this
// program owns and runs on a thread of its own (sluice/asio.hpp). Prints "ready", then serves until stdin
// ends; then prints "stopped requests N" and exits 0.
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "sluice/asio.hpp"
#include "sluice/sluice.hpp"

namespace {

using namespace sluice;

class ReverseFailover final : public routing::MultiClusterPolicy {
 public:
  void place(const config::Service& service, std::string_view, std::span<const routing::ClusterInfo> clusters,
             std::span<routing::ClusterPlacement> out) const override {
    const auto& targets = service.policy.targets;
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      for (std::size_t t = 0; t < targets.size(); ++t) {
        if (targets[t].cluster == clusters[i].key) out[i] = {static_cast<int>(targets.size() - 1 - t), 0};
      }
      if (clusters[i].local) out[i] = {static_cast<int>(targets.size()), 0};
    }
  }
};

class LastAllowed final : public routing::LoadBalancingPolicy {
 public:
  int pick(const routing::LbRequest&, routing::LbTier& tier) override {
    for (std::size_t k = tier.size(); k-- > 0;) {
      if (tier.allowed(k)) return static_cast<int>(k);
    }
    return -1;
  }
};

// Set when stdin ends: main then stops the proxy.
struct Finished {
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
  void set() {
    std::lock_guard lock(mutex);
    done = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex);
    cv.wait(lock, [this] { return done; });
  }
};

Finished finished;

class LineFeed final : public Source {
 public:
  explicit LineFeed(config::ClusterIdentity local) : local_(std::move(local)) {}
  ~LineFeed() override { stop(); }

  std::string start(std::function<std::vector<std::string>(routing::Model)> publish) override {
    publish_ = std::move(publish);
    thread_ = std::thread([this] { run(); });
    return {};
  }

  void stop() override {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run() {
    std::string pending;
    char buf[512];
    while (!stopping_) {
      pollfd pfd{0, POLLIN, 0};
      if (::poll(&pfd, 1, 50) <= 0) continue;
      const ssize_t n = ::read(0, buf, sizeof buf);
      if (n <= 0) break;
      pending.append(buf, static_cast<std::size_t>(n));
      for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
        handle(pending.substr(0, nl));
        pending.erase(0, nl + 1);
      }
    }
    finished.set();
  }

  void handle(const std::string& line) {
    std::istringstream in(line);
    std::string verb, service, cluster;
    int port = 0;
    if (!(in >> verb >> service >> cluster >> port) || (verb != "add" && verb != "remove") || port <= 0 ||
        port > 65535 || service.find('.') == std::string::npos) {
      std::cout << "bad line" << std::endl;
      return;
    }
    auto& ports = endpoints_[service][cluster];
    if (verb == "add") {
      ports.insert(static_cast<std::uint16_t>(port));
    } else {
      ports.erase(static_cast<std::uint16_t>(port));
    }
    std::cout << "published " << publish_(model()).size() << std::endl;
  }

  routing::Model model() const {
    routing::Model m;
    m.local = local_;
    m.source = "line-feed";
    for (const auto& [id, clusters] : endpoints_) {
      config::Service& s = m.services.emplace_back();
      s.name = id.substr(0, id.find('.'));
      s.name_space = id.substr(id.find('.') + 1);
      s.slow_start_window = std::chrono::milliseconds(0);
      for (const auto& [key, ports] : clusters) {
        config::ClusterEndpoints& ce = s.clusters.emplace_back();
        ce.cluster = key;
        for (auto port : ports) ce.endpoints.push_back(config::Endpoint{"127.0.0.1", port});
      }
    }
    return m;
  }

  config::ClusterIdentity local_;
  std::function<std::vector<std::string>(routing::Model)> publish_;
  std::map<std::string, std::map<std::string, std::set<std::uint16_t>>> endpoints_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: plugin_host CONFIG [--io-context]\n";
    return 2;
  }
  const bool own_context = argc > 2 && std::string_view(argv[2]) == "--io-context";
  routing::register_multi_cluster_policy("reverse-failover", std::make_shared<ReverseFailover>());
  routing::register_load_balancer("last-allowed", [](std::string_view) { return std::make_shared<LastAllowed>(); });
  register_source("line-feed", [](const config::Config& cfg) { return std::make_unique<LineFeed>(cfg.cluster); });

  std::vector<std::string> errors;
  // Before the proxy: destroyed after it. The worker start_on puts on `ioc` owns timers and sockets of
  // ioc's services; with the proxy declared first, ~Proxy touched them after ~io_context had freed them
  // (a heap-use-after-free AddressSanitizer found at exit, tests/proxy/test_plugins.py).
  boost::asio::io_context ioc;
  auto proxy = Proxy::from_file(argv[1], errors);
  std::thread io_thread;
  if (proxy) {
    const auto& names = proxy->config().sources;
    if (std::find(names.begin(), names.end(), "line-feed") == names.end()) {
      proxy->add_source(std::make_unique<LineFeed>(proxy->config().cluster));
    }
    if (own_context) {
      errors = start_on(*proxy, ioc);
      io_thread = std::thread([&ioc] {
        auto guard = boost::asio::make_work_guard(ioc);
        ioc.run();
      });
    } else {
      errors = proxy->start();
    }
  }
  for (const auto& e : errors) std::cerr << "plugin_host: " << e << "\n";
  if (!errors.empty()) {
    if (io_thread.joinable()) {
      ioc.stop();
      io_thread.join();
    }
    return 1;
  }
  std::cout << "ready" << std::endl;
  finished.wait();
  proxy->stop();
  if (io_thread.joinable()) {
    ioc.stop();
    io_thread.join();
  }
  std::cout << "stopped requests " << proxy->stats().requests << std::endl;
  return 0;
}
