// The proxy: its workers, listeners and shared settings. Built from a config,
// fed by a routing::Table that the control thread publishes into.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/access_log.hpp"
#include "proxy/stats.hpp"
#include "proxy/worker.hpp"
#include "routing/table.hpp"

namespace sluice::proxy {

class Server {
 public:
  // `table` must outlive the server. `external`: one worker on this io_context, which the program runs
  // and which outlives the server (see Worker::stop), instead of the config's worker threads.
  Server(const config::Config& cfg, const routing::Table& table, net::io_context* external = nullptr);
  ~Server();

  // Opens the access log and binds every listener on every worker. Returns every error (empty: ready).
  std::vector<std::string> bind();
  // What every worker runs with (timeouts, limits, mesh TLS).
  const WorkerSettings& settings() const { return settings_; }
  void start();

  // Graceful stop, step one: stop accepting, close idle keep-alive connections, and close the others after
  // their current response. Any thread.
  void drain();
  // Requests in flight on all workers. Any thread.
  std::int64_t busy() const;
  // Waits until busy() is 0 or `deadline` has passed; true when it is 0. Woken by the workers as their last
  // request ends (IdleSignal), not by polling. Any thread but a worker's.
  bool wait_idle(std::chrono::steady_clock::time_point deadline);
  // Stops the workers (in-flight requests are cut). Any thread but a worker's.
  void stop();

  // Reloads listener certificates whose files changed; returns log lines. Control thread.
  std::vector<std::string> check_tls_reload();

  const std::vector<std::unique_ptr<Worker>>& workers() const { return workers_; }
  // Whether drain() was called. Any thread.
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

 private:
  config::Config cfg_;
  const routing::Table& table_;
  AccessLog access_log_;
  WorkerSettings settings_;
  IdleSignal idle_;  // the workers' request gauges point at it: declared before them, so it outlives them
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::shared_ptr<ServerTls>> listener_tls_;
  // Set by drain() on any thread, read by the control thread (a proxy that waits for its sources' sync
  // starts no worker once draining). Relaxed: it publishes no other data; the workers learn of the drain
  // through their own flag and the close posted to their io_context (Worker::drain).
  std::atomic<bool> draining_{false};
};

// Sums one counter over all workers.
template <class F>
std::uint64_t sum_workers(const Server& server, F&& pick) {
  std::uint64_t total = 0;
  for (const auto& w : server.workers()) total += pick(w->stats());
  return total;
}

}  // namespace sluice::proxy
