// sluice::Proxy: config -> routing table -> server -> admin, health checks, failover events and
// discovery sources, with the control thread owned by the proxy. The sluice binary is a user of it (flags,
// signals and file watching are the binary's).
#include <algorithm>
#include <future>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "config/parse.hpp"
#include "config/validate.hpp"
#include "embed/control_source.hpp"
#include "embed/inputs.hpp"
#include "embed/sources.hpp"
#include "log/logger.hpp"
#include "prometheus/writer.hpp"
#include "proxy/admin.hpp"
#include "proxy/failover_monitor.hpp"
#include "proxy/health_checker.hpp"
#include "proxy/server.hpp"
#include "routing/publisher.hpp"
#include "routing/registry.hpp"
#include "routing/table.hpp"
#include "sluice/asio.hpp"
#include "sluice/sluice.hpp"

namespace sluice {
namespace {

// A discovery source the config names: where it is named ("sources[1]", or "kubernetes.enabled") and
// its name.
struct NamedSource {
  std::string at;
  std::string name;
};

// The config's sources by name, in order; "kubernetes": {"enabled": true} names the built-in one too
// (first, unless "sources" lists it).
std::vector<NamedSource> named_sources(const config::Config& cfg) {
  std::vector<NamedSource> named;
  const auto listed = std::find(cfg.sources.begin(), cfg.sources.end(), "kubernetes");
  if (cfg.kubernetes.enabled && listed == cfg.sources.end()) named.push_back({"kubernetes.enabled", "kubernetes"});
  for (std::size_t i = 0; i < cfg.sources.size(); ++i) {
    named.push_back({"sources[" + std::to_string(i) + "]", cfg.sources[i]});
  }
  return named;
}

// /explain without listener=: the sidecar's outbound listener, else the first.
std::string default_listener(const config::Config& cfg) {
  std::string name;
  for (const auto& l : cfg.listeners) {
    if (name.empty() || (l.role == config::Role::sidecar && name == cfg.listeners.front().name)) name = l.name;
  }
  return name;
}

void render_health_metrics(const proxy::HealthChecker& checker, prometheus::Writer& out) {
  using prometheus::Type;
  out.family("sluice_health_checks_total", Type::counter, "Active health-check probes sent.");
  out.sample(checker.probes());
  out.family("sluice_health_check_failures_total", Type::counter, "Active health-check probes that failed.");
  out.sample(checker.probe_failures());
  out.family("sluice_ejection_probes_total", Type::counter, "Probes of ejected endpoints (connects or requests).");
  out.sample(checker.ejection_probes());
}

}  // namespace

// sluice/asio.hpp's entry point reaches the proxy's internals through this friend.
struct ProxyAccess {
  static std::vector<std::string> start_on(Proxy& proxy, net::io_context& ioc);
};

struct Proxy::Impl {
  Impl(config::Config c, const ProxyOptions& o)
      : cfg(std::move(c)), options(o), publisher(table, registry), inputs(publisher) {}

  config::Config cfg;
  mutable std::mutex cfg_mutex;  // cfg's services and routes: reload() against config_model()
  ProxyOptions options;
  routing::Table table;
  routing::EndpointRegistry registry;
  routing::Publisher publisher;
  RoutingInputs inputs;  // input 0: the config's or publish()'s, 1 + i: sources[i]'s
  std::size_t base_owner_input = 0;  // the built-in source carrying the config's routing (0: none)

  std::unique_ptr<proxy::Server> server;
  net::io_context control{1};
  std::unique_ptr<proxy::HealthChecker> health_checker;
  std::unique_ptr<proxy::FailoverMonitor> failover;
  std::unique_ptr<proxy::Admin> admin;
  std::thread control_thread;
  std::vector<std::unique_ptr<Source>> sources;
  std::vector<Source*> started_sources;
  std::vector<ControlSource*> control_sources;  // the started built-in ones, on the control thread
  net::steady_timer start_timer{control};
  std::chrono::steady_clock::time_point start_deadline;
  bool holding_workers = false;  // the workers wait for the built-in sources' sync (start_when_synced)
  bool started = false;
  bool stopped = false;
  std::mutex lifecycle_mutex;  // start/stop from different threads

  // Errors of routing that names unregistered plugins; with fall_back_on_missing_plugins, logged instead.
  std::vector<std::string> plugin_errors(const std::vector<config::Service>& services) const {
    auto missing = routing::missing_plugins(services);
    if (!options.fall_back_on_missing_plugins) return missing;
    for (const auto& m : missing) log::warn(m + " (served with the built-in policy)");
    return {};
  }

  // The admin endpoint's view of this proxy. Called by start(), after the health checker and failover
  // monitor exist.
  proxy::AdminSources admin_sources() {
    proxy::AdminSources a;
    a.server = server.get();
    a.table = &table;
    a.default_listener = default_listener(cfg);
    a.last_failover = [f = failover.get()](const std::string& id) { return f->last_event(id); };
    a.extra_metrics = [this](prometheus::Writer& out) {
      failover->render_metrics(out);
      render_health_metrics(*health_checker, out);
      for (const ControlSource* c : control_sources) c->render_metrics(out);
    };
    if (!control_sources.empty()) {
      a.synced = [this] { return all_synced(); };
      a.extra_status = [this](nlohmann::json& j) {
        for (const ControlSource* c : control_sources) c->add_status(j);
      };
    }
    return a;
  }

  bool all_synced() const {
    return std::all_of(control_sources.begin(), control_sources.end(), [](const ControlSource* c) { return c->synced(); });
  }

  // The workers accept once the built-in sources have synced or the deadline passed (and not after a
  // drain): at once when they have, else when the deadline's timer fires or a built-in source's
  // publication finds them all synced (sync_progress), whichever comes first. Control thread.
  void start_when_synced() {
    if (all_synced()) return start_held_workers();
    start_timer.expires_at(start_deadline);
    start_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) start_held_workers();
    });
  }

  // After a built-in source published (its first full sync publishes). Control thread.
  void sync_progress() {
    if (holding_workers && all_synced()) start_held_workers();
  }

  void start_held_workers() {
    if (!holding_workers) return;
    holding_workers = false;
    start_timer.cancel();
    if (!server->draining()) server->start();
  }
};

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Proxy::~Proxy() { stop(); }

std::optional<config::Config> load_config(const std::string& path, std::vector<std::string>& errors) {
  auto parsed = config::load_config_file(path);
  for (auto& e : parsed.errors) errors.push_back(path + ": " + e);
  return std::move(parsed.config);
}

std::vector<std::string> check_config(const config::Config& cfg, const ProxyOptions& options) {
  auto errors = config::validate_config(cfg);
  if (!options.fall_back_on_missing_plugins) {
    for (auto& e : routing::missing_plugins(cfg.services)) errors.push_back(std::move(e));
  }
  log::Level level;
  if (!log::parse_level(cfg.log_level, level)) errors.push_back("log_level: expected trace|debug|info|warn|error");
  for (const auto& [at, name] : named_sources(cfg)) {
    if (find_source(name)) continue;
    std::string known;
    for (const auto& n : source_names()) known += (known.empty() ? "\"" : ", \"") + n + "\"";
    errors.push_back(at + ": no discovery source \"" + name + "\" registered (registered: " + known + ")");
  }
  return errors;
}

std::string_view version() { return SLUICE_VERSION; }

std::unique_ptr<Proxy> Proxy::from_file(const std::string& path, std::vector<std::string>& errors,
                                        const ProxyOptions& options) {
  auto cfg = load_config(path, errors);
  if (!cfg) return nullptr;
  return from_config(std::move(*cfg), errors, options);
}

std::unique_ptr<Proxy> Proxy::from_json(std::string_view text, std::vector<std::string>& errors,
                                        const ProxyOptions& options) {
  auto parsed = config::parse_config(text);
  if (!parsed.errors.empty()) {
    errors.insert(errors.end(), parsed.errors.begin(), parsed.errors.end());
    return nullptr;
  }
  return from_config(std::move(*parsed.config), errors, options);
}

std::unique_ptr<Proxy> Proxy::from_config(config::Config cfg, std::vector<std::string>& errors,
                                          const ProxyOptions& options) {
  if (auto problems = check_config(cfg, options); !problems.empty()) {
    errors.insert(errors.end(), problems.begin(), problems.end());
    return nullptr;
  }
  std::vector<std::unique_ptr<Source>> made;
  bool made_all = true;
  for (const auto& [at, name] : named_sources(cfg)) {
    if (auto source = find_source(name)(cfg)) {
      made.push_back(std::move(source));
    } else {
      errors.push_back(at + ": the factory of \"" + name + "\" made no source");
      made_all = false;
    }
  }
  if (!made_all) return nullptr;
  log::Level level = log::Level::info;
  log::parse_level(cfg.log_level, level);  // check_config has checked it
  log::set_level(level);
  auto impl = std::make_unique<Impl>(std::move(cfg), options);
  impl->plugin_errors(impl->cfg.services);  // with fall_back_on_missing_plugins: the warnings
  impl->inputs.publish(0, routing::static_model(impl->cfg), true);
  impl->server = std::make_unique<proxy::Server>(impl->cfg, impl->table);
  impl->sources = std::move(made);
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

void Proxy::add_source(std::unique_ptr<Source> source) {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (!impl_->started && source) impl_->sources.push_back(std::move(source));
}

std::vector<std::string> ProxyAccess::start_on(Proxy& proxy, net::io_context& ioc) {
  Proxy::Impl& m = *proxy.impl_;
  {
    std::lock_guard lock(m.lifecycle_mutex);
    if (m.started) return {"sluice::start_on: already started"};
    // The server made by from_config has not bound anything yet: replace it with one on `ioc`.
    m.server = std::make_unique<proxy::Server>(m.cfg, m.table, &ioc);
  }
  return proxy.start();
}

std::vector<std::string> start_on(Proxy& proxy, boost::asio::io_context& ioc) {
  return ProxyAccess::start_on(proxy, ioc);
}

std::vector<std::string> Proxy::start() {
  Impl& m = *impl_;
  std::lock_guard lock(m.lifecycle_mutex);
  if (m.started) return {"sluice::Proxy::start: already started"};
  m.started = true;
  auto errors = m.server->bind();
  m.health_checker =
      std::make_unique<proxy::HealthChecker>(m.control, m.table, m.registry, m.server->settings().mesh_tls);
  m.failover = std::make_unique<proxy::FailoverMonitor>(m.control, m.table);
  // The built-in sources run on the control thread; the first of them carries the config's routing.
  for (std::size_t i = 0; i < m.sources.size(); ++i) {
    if (ControlSource* c = SourceAccess::control_side(*m.sources[i])) {
      c->attach(m.control);
      m.control_sources.push_back(c);
      const bool owner = m.base_owner_input == 0;
      if (owner) {
        m.base_owner_input = i + 1;
        m.inputs.set_base_owner(i + 1);
      }
      // The config's routing as it is now (reload() may have changed it since the source was made).
      std::lock_guard config_lock(m.cfg_mutex);
      c->set_base(owner ? routing::static_model(m.cfg) : routing::Model{});
    }
  }
  m.admin = std::make_unique<proxy::Admin>(m.control, m.admin_sources());
  if (errors.empty() && m.cfg.admin.enabled) {
    if (auto error = m.admin->listen(m.cfg.admin); !error.empty()) errors.push_back(error);
  }
  // Sources start before the workers accept, so that a source that cannot start leaves nothing running.
  for (std::size_t i = 0; errors.empty() && i < m.sources.size(); ++i) {
    Source* source = m.sources[i].get();
    const bool on_control = SourceAccess::control_side(*source) != nullptr;
    auto error = source->start([&m, input = i + 1, on_control](routing::Model model) {
      auto problems = m.inputs.publish(input, std::move(model));
      // A built-in source publishes on the control thread, and its first full sync publishes.
      if (on_control) m.sync_progress();
      return problems;
    });
    if (!error.empty()) {
      // The built-in sources name themselves ("kubernetes: ..."), as the binary has always logged them.
      errors.push_back(SourceAccess::control_side(*source) ? std::move(error) : "source: " + error);
    } else {
      m.started_sources.push_back(source);
    }
  }
  if (!errors.empty()) {
    // The control thread has not run: this thread stops the built-in sources too.
    for (Source* s : m.started_sources) s->stop();
    m.started_sources.clear();
    m.control_sources.clear();
    m.stopped = true;
    return errors;
  }
  if (m.cfg.admin.enabled) m.admin->start();
  if (m.control_sources.empty() || m.options.source_sync_wait.count() <= 0) {
    m.server->start();
  } else {
    // Connections meanwhile wait in the listen backlog.
    m.start_deadline = std::chrono::steady_clock::now() + m.options.source_sync_wait;
    m.holding_workers = true;  // before the control thread runs: its own from then on
    net::post(m.control, [&m] { m.start_when_synced(); });
  }
  m.health_checker->start();
  m.failover->start();
  m.control_thread = std::thread([&m] {
    auto guard = net::make_work_guard(m.control);
    m.control.run();
  });
  return errors;
}

std::vector<std::string> Proxy::publish(routing::Model model) { return impl_->inputs.publish(0, std::move(model)); }

routing::Model Proxy::config_model() const {
  std::lock_guard lock(impl_->cfg_mutex);
  return routing::static_model(impl_->cfg);
}

std::vector<std::string> Proxy::reload(const config::Config& next) {
  Impl& m = *impl_;
  auto errors = config::validate_config(next);
  for (auto& e : m.plugin_errors(next.services)) errors.push_back(std::move(e));
  if (!errors.empty()) return errors;
  std::lock_guard lock(m.lifecycle_mutex);
  routing::Model model;
  {
    std::lock_guard config_lock(m.cfg_mutex);
    m.cfg.services = next.services;
    m.cfg.routes = next.routes;
    model = routing::static_model(m.cfg);
  }
  // The base-owning source (known once started; start() hands it the config's routing then) republishes
  // with the new base on its thread; until its first publication the config's model is published as it
  // is (RoutingInputs ignores it afterwards).
  if (m.base_owner_input != 0) {
    ControlSource* owner = SourceAccess::control_side(*m.sources[m.base_owner_input - 1]);
    if (m.control_thread.joinable()) net::post(m.control, [owner, base = model] { owner->set_base(base); });
  }
  m.inputs.publish(0, std::move(model), true);
  return {};
}

std::vector<std::string> Proxy::reload_tls() {
  Impl& m = *impl_;
  std::lock_guard lock(m.lifecycle_mutex);
  if (!m.control_thread.joinable()) return m.server->check_tls_reload();  // no control thread: this is it
  // Shared: set_value may still be returning on the control thread when this thread wakes up. The
  // control thread ends only in stop(), which waits for this lock.
  auto done = std::make_shared<std::promise<std::vector<std::string>>>();
  auto lines = done->get_future();
  net::post(m.control, [&m, done] { done->set_value(m.server->check_tls_reload()); });
  return lines.get();
}

void Proxy::drain() {
  Impl& m = *impl_;
  if (m.admin) m.admin->set_draining();
  m.server->drain();
}

bool Proxy::wait_drained(std::chrono::milliseconds timeout) {
  return impl_->server->wait_idle(std::chrono::steady_clock::now() + timeout);
}

void Proxy::stop() {
  Impl& m = *impl_;
  std::lock_guard lock(m.lifecycle_mutex);
  if (m.stopped && !m.control_thread.joinable()) return;
  m.stopped = true;
  // The program's sources from this thread; the built-in ones belong to the control thread.
  std::vector<Source*> on_control;
  for (Source* s : m.started_sources) {
    if (SourceAccess::control_side(*s) && m.control_thread.joinable()) {
      on_control.push_back(s);
    } else {
      s->stop();
    }
  }
  m.started_sources.clear();
  if (m.control_thread.joinable()) {
    // The control objects belong to the control thread: stop them there, then let it end.
    net::post(m.control, [&m, on_control] {
      for (Source* s : on_control) s->stop();
      m.start_timer.cancel();
      m.health_checker->stop();
      m.failover->stop();
      m.admin->close();
      m.control.stop();
    });
    m.control_thread.join();
  }
  m.server->stop();
}

Stats Proxy::stats() const {
  const proxy::Server& server = *impl_->server;
  Stats s;
  s.requests = proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.requests.get(); });
  s.responses_2xx = proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.responses_by_class[2].get(); });
  s.responses_4xx = proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.responses_by_class[4].get(); });
  s.responses_5xx = proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.responses_by_class[5].get(); });
  s.no_route = proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.no_route.get(); });
  s.no_endpoint = proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.no_endpoint.get(); });
  s.retries = proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.retries.get(); });
  s.upstream_connect_failures =
      proxy::sum_workers(server, [](const proxy::WorkerStats& w) { return w.upstream_connect_failures.get(); });
  s.active_requests = server.busy();
  s.routing_updates = impl_->publisher.published();
  return s;
}

const config::Config& Proxy::config() const { return impl_->cfg; }

}  // namespace sluice
