// A worker: one io_context run by one thread, its own SO_REUSEPORT acceptors,
// its own routing Picker and upstream pool. A connection lives on one worker.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/config.hpp"
#include "net/net.hpp"
#include "proxy/stats.hpp"
#include "proxy/tls.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/picker.hpp"

namespace sluice::proxy {

class HttpSession;
class AccessLog;
class ServerTls;

// What a session needs to know about the listener that accepted it.
struct ListenerInfo {
  config::Listener cfg;
  std::shared_ptr<ServerTls> tls;  // null: plain HTTP
};

// Shared, read-only settings of every worker.
struct WorkerSettings {
  config::Limits limits;
  config::Timeouts timeouts;
  config::UpstreamPool upstream;
  std::string local_cluster;  // key of this cluster (access log src_cluster)
  AccessLog* access_log = nullptr;  // null: off
  std::optional<config::MeshTls> mesh_tls;  // mTLS towards remote gateways without their own tls
};

class Worker {
 public:
  Worker(unsigned index, const WorkerSettings& settings, const routing::Table& table);
  ~Worker();

  // Binds one acceptor per listener (SO_REUSEPORT, so every worker binds the same port).
  // Returns an error text, empty on success. Before start() only.
  std::string add_listener(std::shared_ptr<const ListenerInfo> listener);

  void start();
  // Stops accepting, answers the next response on each keep-alive connection with Connection: close and
  // closes idle ones. Any thread.
  void drain();
  // Stops the io_context and joins the thread. Any thread but the worker's own.
  void stop();

  // In-flight requests plus open downstream connections (for drain). Any thread.
  std::int64_t busy() const { return stats_.active_requests.get(); }

  // Session-facing (worker thread only).
  net::io_context& ioc() { return ioc_; }
  routing::Picker& picker() { return picker_; }
  UpstreamPool& pool() { return pool_; }
  ClientTlsCache& client_tls() { return client_tls_; }
  WorkerStats& stats() { return stats_; }
  const WorkerStats& stats() const { return stats_; }
  const WorkerSettings& settings() const { return settings_; }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  unsigned index() const { return index_; }

  // Sessions register so that drain() can close idle keep-alive connections.
  std::list<HttpSession*>::iterator register_session(HttpSession* s) { return sessions_.insert(sessions_.end(), s); }
  void unregister_session(std::list<HttpSession*>::iterator it) { sessions_.erase(it); }

 private:
  struct Acceptor {
    std::shared_ptr<const ListenerInfo> listener;
    tcp::acceptor acceptor;
  };

  net::awaitable<void> accept_loop(Acceptor& a);
  void arm_sweep();
  void prune_pool();

  // Declaration order matters: pending coroutines (sessions) are destroyed with ioc_ and touch stats_ and
  // sessions_ on the way out, so those outlive it; sockets (pool_, acceptors_) must die before it.
  unsigned index_;
  const WorkerSettings& settings_;
  WorkerStats stats_;
  std::list<HttpSession*> sessions_;
  std::atomic<bool> draining_{false};
  routing::Picker picker_;
  net::io_context ioc_{1};
  UpstreamPool pool_;
  ClientTlsCache client_tls_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  net::steady_timer sweep_timer_{ioc_};
  std::uint64_t pooled_generation_ = 0;  // snapshot generation the pool was last pruned against
  std::thread thread_;
};

}  // namespace sluice::proxy
