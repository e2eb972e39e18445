// The admin endpoint, on its own listener (default 127.0.0.1:9901), served by
// the control thread: /ready, /live, /stats (Prometheus text), /routes (the
// current table as JSON) and /explain?host=...&path=... (why a request would
// go where it goes).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json_fwd.hpp>

#include "config/config.hpp"
#include "net/net.hpp"

namespace sluice::routing {
class Table;
class Picker;
}

namespace sluice::prometheus {
class Writer;
}

namespace sluice::proxy {

class Server;

struct AdminSources {
  const Server* server = nullptr;
  const routing::Table* table = nullptr;
  std::string default_listener;  // /explain without listener=: the sidecar's outbound listener, else the first
  // Ready once the first full discovery sync is done (static config: at once). Control thread.
  std::function<bool()> synced = [] { return true; };
  // Extra metric families (failover events, health checks, discovery's watch metrics), written to the
  // same writer as the proxy's own. Control thread.
  std::function<void(prometheus::Writer&)> extra_metrics;
  // Extra JSON for /routes and /explain (discovery status: stale, last sync). Control thread.
  std::function<void(nlohmann::json&)> extra_status;
  // The last failover event of a service, or null. Control thread.
  std::function<nlohmann::json(const std::string& service_id)> last_failover;
};

class Admin {
 public:
  Admin(net::io_context& control, AdminSources sources);
  ~Admin();

  // Binds the admin listener. Returns an error text, empty on success. Control thread.
  std::string listen(const config::Admin& cfg);
  // The address listen() bound (with port 0 in `cfg`, the port the system chose). Control thread.
  tcp::endpoint local_endpoint() const;
  void start();
  void close();

  // Called on drain: /ready answers 503 from now on. Any thread.
  void set_draining() { draining_.store(true, std::memory_order_relaxed); }

 private:
  net::awaitable<void> accept_loop();
  net::awaitable<void> serve(tcp::socket socket);

  net::io_context& control_;
  AdminSources sources_;
  std::unique_ptr<routing::Picker> picker_;  // the admin's own balancer, for /explain's "next" pick
  tcp::acceptor acceptor_;
  net::steady_timer accept_retry_;  // the pause after a failed accept (e.g. out of descriptors)
  // Written by drain() on any thread, read by the control thread when /ready is asked. Relaxed: it
  // publishes no other data, and a /ready answered a moment before the store is as right as one after.
  std::atomic<bool> draining_{false};
};

// Renders every metric in Prometheus text format (version 0.0.4), each family's # HELP and # TYPE once.
std::string render_metrics(const AdminSources& sources);

}  // namespace sluice::proxy
