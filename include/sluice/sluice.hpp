// Sluice as a library: embed the proxy in a C++ program, feed it routing from the program's own code or
// from discovery sources registered by name, and plug in load-balancing and multi-cluster policies
// (routing/plugins.hpp). To serve on an io_context the program owns, see sluice/asio.hpp.
//
//   std::vector<std::string> errors;
//   auto proxy = sluice::Proxy::from_file("sluice.json", errors);
//   if (!proxy || !(errors = proxy->start()).empty()) { ... }
//   proxy->publish(model);          // services, endpoints and routes, any time, any thread
//   proxy->reload(next_config);     // the config's services and routes, as the binary's SIGHUP does
//   proxy->drain(); proxy->wait_drained(5s); proxy->stop();
//
// Public header: standard library, config/config.hpp, routing/model.hpp and routing/plugins.hpp only
// (no Asio or Beast). log/logger.hpp, installed alongside, writes log lines in the proxy's format. Link
// with `pkg-config --cflags --libs sluice`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "routing/model.hpp"
#include "routing/plugins.hpp"

namespace sluice {

// Counters summed over the workers, and the routing updates published.
struct Stats {
  std::uint64_t requests = 0;
  std::uint64_t responses_2xx = 0;
  std::uint64_t responses_4xx = 0;
  std::uint64_t responses_5xx = 0;
  std::uint64_t no_route = 0;                   // 404 answered by the proxy
  std::uint64_t no_endpoint = 0;                // 503 answered by the proxy
  std::uint64_t retries = 0;
  std::uint64_t upstream_connect_failures = 0;
  std::int64_t active_requests = 0;
  std::uint64_t routing_updates = 0;            // routing snapshots published (the config's is the first)
};

class ControlSource;  // libsluice's own (embed/control_source.hpp)

// A discovery source: started with the proxy, it publishes whole routing models, each replacing the
// source's previous one. The proxy routes by the union of the latest model of every source and of the
// config's own (or Proxy::publish's) model: routes are concatenated (the config's first), and a service
// that several define is taken from the last of them (sources in the order added; the config first).
class Source {
 public:
  virtual ~Source() = default;
  // Starts feeding. `publish` may be called from any thread until stop() returns; it returns the
  // model's problems (unregistered plugins), empty when published. Returns an error text, "" on success.
  virtual std::string start(std::function<std::vector<std::string>(routing::Model)> publish) = 0;
  // Stops feeding; after it returns the source calls `publish` no more.
  virtual void stop() = 0;

 private:
  friend struct SourceAccess;  // the Proxy
  // Where the proxy runs the source. Null (this default, for a program's sources): on threads of the
  // source's own; start() and stop() are called from the threads that call Proxy::start() and stop().
  // The built-in sources ("kubernetes") return their side that runs on the proxy's control thread: it
  // holds the workers until the first sync, merges the config's routing under its own and reports to
  // the admin endpoint (a private interface of libsluice).
  virtual ControlSource* control_side() { return nullptr; }
};

// Makes a discovery source for a proxy built from `config` (the source reads its own settings there, as
// the built-in "kubernetes" reads "kubernetes"); null when it cannot.
using SourceFactory = std::function<std::unique_ptr<Source>(const config::Config& config)>;

// Registers (or replaces) a discovery source under `name`, which a config selects with
// "sources": ["name", ...]. "kubernetes" is built in (the Kubernetes API; "kubernetes": {"enabled": true}
// selects it too) and may be replaced. Takes effect for proxies built afterwards. Returns false for an
// empty name or factory. Any thread.
bool register_source(const std::string& name, SourceFactory factory);
// Removes a registration (a replaced built-in comes back). Returns whether it existed. Any thread.
bool unregister_source(const std::string& name);
// The factory registered (or built in) as `name`, or null. Any thread.
SourceFactory find_source(std::string_view name);

// How Proxy::from_* build a proxy beyond what the config says.
struct ProxyOptions {
  // Workers accept only once every built-in source that syncs ("kubernetes": its first full list of the
  // API) has synced, or this long after start(): before it the table holds the config's part alone and a
  // gateway would answer "no route" to routable requests. Connections wait in the listen backlog
  // meanwhile. Zero: accept at once. Sources of the program's own are not waited for.
  std::chrono::milliseconds source_sync_wait{10000};
  // A service naming a plugin nobody registered: false refuses the config (from_* and reload() return
  // the errors); true logs a warning and serves the service with the built-in policy (the sluice binary,
  // which registers no plugins, runs so).
  bool fall_back_on_missing_plugins = false;
};

// Reads and parses a config file (config/README.md). Returns nullopt and appends every problem to
// `errors`, each naming the file and the JSON path ("sluice.json: listeners[1].port: expected 1..65535,
// got 70000"), when it is unreadable or invalid. Any thread.
std::optional<config::Config> load_config(const std::string& path, std::vector<std::string>& errors);

// Every problem Proxy::from_config would refuse `config` for (each naming its JSON path): validation,
// plugins nobody registered (unless options fall back on them), discovery sources nobody registered.
// Makes nothing and logs nothing. Empty: from_config builds it (unless a source's factory makes no
// source). Any thread.
std::vector<std::string> check_config(const config::Config& config, const ProxyOptions& options = {});

// The library's version ("0.1.0"), the meson project's.
std::string_view version();

class Proxy {
 public:
  // Builds a proxy from a JSON config (config/README.md): a file, JSON text, or the structs (validated
  // here too: check_config). Returns null and fills `errors` when the config is invalid or names a plugin
  // or source nobody registered (register them first). Makes the config's sources and sets the logger's
  // level (log/logger.hpp) to the config's log_level; nothing is bound or started yet.
  static std::unique_ptr<Proxy> from_file(const std::string& path, std::vector<std::string>& errors,
                                          const ProxyOptions& options = {});
  static std::unique_ptr<Proxy> from_json(std::string_view text, std::vector<std::string>& errors,
                                          const ProxyOptions& options = {});
  static std::unique_ptr<Proxy> from_config(config::Config cfg, std::vector<std::string>& errors,
                                            const ProxyOptions& options = {});

  ~Proxy();  // stop()
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Adds a discovery source (after the config's), started by start() and stopped by stop(). Before
  // start() only.
  void add_source(std::unique_ptr<Source> source);

  // Binds every listener (and the admin endpoint when the config enables it), then runs the config's
  // worker threads plus one control thread (admin, active health checks, failover events) and starts the
  // sources. The workers accept at once, or after the built-in sources' first sync (see ProxyOptions).
  // Returns every error; on any error nothing runs. Once.
  std::vector<std::string> start();

  // Publishes routing: `model` replaces the services and routes (the config's, or the last published),
  // combined with the sources' latest models (see Source). Returns its problems (unregistered plugins:
  // those services fall back to their built-in policies); the model is published either way.
  // Synchronous: requests accepted after the call see it. Any thread.
  std::vector<std::string> publish(routing::Model model);

  // The config's own services and routes as a model: a starting point for publish().
  routing::Model config_model() const;

  // Takes `next`'s services and routes as the config's routing and publishes them (to the built-in
  // sources too, which merge them under what they discover); listeners, admin, workers, timeouts and
  // sources keep their started values (those need a new proxy). After a publish() the published model
  // stays, and `next` becomes config_model(). Returns the errors of an invalid `next` (then nothing
  // changes), empty when published. Any thread but the proxy's own; not concurrently with config().
  std::vector<std::string> reload(const config::Config& next);

  // Reloads the listener certificates whose files changed: new connections get them, connections open
  // keep theirs. Returns a line per certificate reloaded or refused (the old one stays then), empty when
  // none changed. Any thread but the proxy's own.
  std::vector<std::string> reload_tls();

  // Graceful stop, step one: stop accepting, finish the requests in flight. Any thread.
  void drain();
  // Waits until no request is in flight or `timeout` passes; returns whether all finished. Any thread.
  bool wait_drained(std::chrono::milliseconds timeout);
  // Stops the sources, the control thread and the workers (requests still in flight are cut; on a
  // program's io_context, see sluice/asio.hpp, they end at their current response). Any thread but the
  // proxy's own. Idempotent.
  void stop();

  Stats stats() const;
  const config::Config& config() const;

 private:
  friend struct ProxyAccess;  // sluice/asio.hpp's start_on
  struct Impl;
  explicit Proxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice
