// A worker: one io_context run by one thread, its own SO_REUSEPORT acceptors,
// its own routing Picker and upstream pool. A connection lives on one worker.
// The io_context is the worker's own (run by its own thread) or, for a program embedding the proxy, one
// the program owns and runs.
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
#include "proxy/h2_upstream.hpp"
#include "proxy/upstream_pool.hpp"
#include "proxy/write_batch.hpp"
#include "routing/picker.hpp"

namespace sluice::proxy {

class Mailbox;

class HttpSession;
class AccessLog;
class ServerTls;

// Retry-After (seconds) of the 503 that answers a request past limits.max_requests_per_worker (HTTP/1.1 and
// HTTP/2 alike): requests are short, so a second is enough for the worker to have room again.
inline constexpr std::string_view kOverloadRetryAfter = "1";

// EMFILE (this process's descriptor limit), ENFILE (the system's), ENOBUFS/ENOMEM (the kernel's socket
// memory): the proxy itself is out of resources, which says nothing about the peer. Accepting backs off on
// them; an upstream connect failing with one is not held against the endpoint.
bool out_of_descriptors(const boost::system::error_code& ec);

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
  // Upgraded connections open (or reserved by an upgrade request in flight), all workers together:
  // limits.max_tunnels bounds it.
  std::shared_ptr<std::atomic<std::int64_t>> tunnels = std::make_shared<std::atomic<std::int64_t>>(0);
};

class Worker {
 public:
  // `external`: an io_context the program runs (from one thread at a time) and that outlives the worker;
  // null: the worker's own, run by its own thread.
  Worker(unsigned index, const WorkerSettings& settings, const routing::Table& table,
         net::io_context* external = nullptr);
  ~Worker();

  // Binds one acceptor per listener (SO_REUSEPORT, so every worker binds the same port).
  // Returns an error text, empty on success. Before start() only.
  std::string add_listener(std::shared_ptr<const ListenerInfo> listener);

  void start();
  // Stops accepting, answers the next response on each keep-alive connection with Connection: close and
  // closes idle ones. Any thread.
  void drain();
  // In-flight requests are cut either way (drain() first lets them end). Own io_context: stops it and
  // joins the thread. External one: closes the acceptors, every connection (aborting the requests in
  // flight) and the upstream pool on it, then waits until the connections' handlers have run, since they
  // must not outlive the worker; the program must keep running the io_context meanwhile. Any thread but
  // the worker's own. Idempotent.
  void stop();

  // In-flight requests plus open downstream connections (for drain). Any thread.
  std::int64_t busy() const { return stats_.active_requests.get(); }

  // Session-facing (worker thread only).
  net::io_context& ioc() { return ioc_; }
  routing::Picker& picker() { return picker_; }
  UpstreamPool& pool() { return pool_; }
  H2UpstreamPool& h2_pool() { return h2_pool_; }
  WriteBatch& write_batch() { return write_batch_; }
  ClientTlsCache& client_tls() { return client_tls_; }
  WorkerStats& stats() { return stats_; }
  const WorkerStats& stats() const { return stats_; }
  const WorkerSettings& settings() const { return settings_; }
  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  unsigned index() const { return index_; }

  // Sessions register so that drain() can close idle keep-alive connections. Unregistering also wakes an
  // acceptor paused at limits.max_connections_per_worker or backing off for lack of descriptors: a
  // connection (and its descriptor) just freed.
  std::list<HttpSession*>::iterator register_session(HttpSession* s) { return sessions_.insert(sessions_.end(), s); }
  void unregister_session(std::list<HttpSession*>::iterator it);

 private:
  struct Acceptor {
    std::shared_ptr<const ListenerInfo> listener;
    tcp::acceptor acceptor;
    // Paused accepting (connection limit or descriptor backoff): the wait, cancelled by a connection's end.
    // One per acceptor: a timer shared by several loops would have each loop's re-arm cancel the others.
    net::steady_timer resume;
    bool paused = false;
  };

  net::awaitable<void> accept_loop(Acceptor& a);
  // Waits until `a` may accept again: until a connection closes, or `backoff` has passed when set.
  net::awaitable<void> pause_accepting(Acceptor& a, std::optional<std::chrono::milliseconds> backoff);
  // The descriptor-exhaustion warning, at most once per 10 s per worker (worker thread).
  void warn_no_descriptors(const Acceptor& a, const boost::system::error_code& ec);
  void arm_sweep();
  void prune_pool();
  void stop_external();
  // From any thread: `work` runs on the worker's thread (through mailbox_, or posted).
  void run_on_worker(std::function<void()> work);
  void close_acceptors();
  // Calls `done` once no accept loop, sweep or connection is left: at once, or when the last of them ends
  // (each end checks, no polling). Worker thread.
  void await_quiet(std::function<void()> done);
  void check_quiet_soon();
  void check_quiet();

  // Declaration order matters: pending coroutines (sessions) are destroyed with ioc_ and touch stats_ and
  // sessions_ on the way out, so those outlive it; sockets (pool_, acceptors_) must die before it.
  unsigned index_;
  const WorkerSettings& settings_;
  WorkerStats stats_;
  std::list<HttpSession*> sessions_;
  // await_quiet's `done` until it is called, and whether a check is posted (worker thread). Before ioc_ too:
  // a session destroyed with it looks at them on its way out (unregister_session).
  std::function<void()> quiet_done_;
  bool quiet_check_posted_ = false;
  std::atomic<bool> draining_{false};
  routing::Picker picker_;
  std::unique_ptr<net::io_context> own_ioc_;  // null: external
  net::io_context& ioc_;
  // Other threads' work for the worker's own io_context, which takes no lock (kWorkerConcurrencyHint);
  // null on an external one, where net::post does.
  std::unique_ptr<Mailbox> mailbox_;
  UpstreamPool pool_;
  H2UpstreamPool h2_pool_;
  // Before ioc_ dies: its pending writes hold suspended sessions, which touch stats_ and sessions_ on the way out.
  WriteBatch write_batch_{ioc_};
  ClientTlsCache client_tls_;
  std::vector<std::unique_ptr<Acceptor>> acceptors_;
  net::steady_timer sweep_timer_{ioc_};
  std::uint64_t pooled_generation_ = 0;  // snapshot generation the pool was last pruned against
  // Descriptor exhaustion on accept (worker thread): the last warning's time, failures since it.
  std::chrono::steady_clock::time_point no_descriptors_logged_{};
  std::uint64_t no_descriptors_unlogged_ = 0;
  // Worker thread only: accept loops still running, a sweep wait pending (for stop on an external one).
  unsigned accepting_ = 0;
  bool sweep_pending_ = false;
  bool stopped_ = false;         // worker thread
  bool started_ = false;         // the thread that starts and stops the worker
  bool stop_requested_ = false;  // likewise
  std::thread thread_;
};

}  // namespace sluice::proxy
