// sluice::Proxy: the same wiring as the sluice binary (config -> routing table -> server -> admin), with
// the control thread owned by the proxy and routing fed by the program instead of files and signals.
#include <algorithm>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "config/parse.hpp"
#include "config/validate.hpp"
#include "proxy/admin.hpp"
#include "proxy/failover_monitor.hpp"
#include "proxy/health_checker.hpp"
#include "proxy/logger.hpp"
#include "proxy/server.hpp"
#include "routing/publisher.hpp"
#include "routing/registry.hpp"
#include "routing/table.hpp"
#include "sluice/asio.hpp"
#include "sluice/sluice.hpp"

namespace sluice {
namespace {

// How often wait_drained() looks at the requests in flight.
constexpr auto kDrainPoll = std::chrono::milliseconds(20);

// The routing the proxy publishes: the union of its inputs' latest models, `models[0]` the config's (or
// Proxy::publish's), then one per source. Routes in input order; a service defined by several inputs is
// taken from the last one. `local` is the first input's.
routing::Model combine(const std::vector<std::optional<routing::Model>>& models) {
  routing::Model out;
  out.source.clear();
  std::unordered_map<std::string, std::size_t> position;
  bool first = true;
  for (const auto& m : models) {
    if (!m) continue;
    if (first) out.local = m->local;
    first = false;
    out.stale = out.stale || m->stale;
    if (!m->source.empty() && out.source.find(m->source) == std::string::npos) {
      out.source += (out.source.empty() ? "" : "+") + m->source;
    }
    for (const auto& svc : m->services) {
      auto [it, fresh] = position.try_emplace(svc.id(), out.services.size());
      if (fresh) {
        out.services.push_back(svc);
      } else {
        out.services[it->second] = svc;
      }
    }
    out.routes.insert(out.routes.end(), m->routes.begin(), m->routes.end());
  }
  return out;
}

}  // namespace

// sluice/asio.hpp's entry point reaches the proxy's internals through this friend.
struct ProxyAccess {
  static std::vector<std::string> start_on(Proxy& proxy, net::io_context& ioc);
};

struct Proxy::Impl {
  explicit Impl(config::Config c) : cfg(std::move(c)), publisher(table, registry) {}

  config::Config cfg;
  routing::Table table;
  routing::EndpointRegistry registry;
  routing::Publisher publisher;
  std::mutex publish_mutex;  // one build and publication at a time, from any thread

  // Latest model of each input: [0] the config's or publish()'s, [1 + i] sources[i]'s.
  std::vector<std::optional<routing::Model>> models;
  std::unique_ptr<proxy::Server> server;
  net::io_context control{1};
  std::unique_ptr<proxy::HealthChecker> health_checker;
  std::unique_ptr<proxy::FailoverMonitor> failover;
  std::unique_ptr<proxy::Admin> admin;
  std::thread control_thread;
  std::vector<std::unique_ptr<Source>> sources;
  std::vector<Source*> started_sources;
  bool started = false;
  bool stopped = false;
  std::mutex lifecycle_mutex;  // start/stop from different threads

  // Replaces input `slot`'s model and publishes the combination. Any thread.
  std::vector<std::string> publish(std::size_t slot, routing::Model model) {
    auto problems = routing::missing_plugins(model.services);
    std::lock_guard lock(publish_mutex);
    if (models.size() <= slot) models.resize(slot + 1);
    models[slot] = std::move(model);
    // With one input (the common case) its model is published as it is, without a copy of the union.
    const bool alone = std::count_if(models.begin(), models.end(), [](const auto& m) { return m.has_value(); }) == 1;
    publisher.submit(alone ? *models[slot] : combine(models));
    publisher.flush();
    return problems;
  }
};

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Proxy::~Proxy() { stop(); }

std::unique_ptr<Proxy> Proxy::from_file(const std::string& path, std::vector<std::string>& errors) {
  auto parsed = config::load_config_file(path);
  if (!parsed.errors.empty()) {
    for (auto& e : parsed.errors) errors.push_back(path + ": " + e);
    return nullptr;
  }
  return from_config(std::move(*parsed.config), errors);
}

std::unique_ptr<Proxy> Proxy::from_json(std::string_view text, std::vector<std::string>& errors) {
  auto parsed = config::parse_config(text);
  if (!parsed.errors.empty()) {
    errors.insert(errors.end(), parsed.errors.begin(), parsed.errors.end());
    return nullptr;
  }
  return from_config(std::move(*parsed.config), errors);
}

std::unique_ptr<Proxy> Proxy::from_config(config::Config cfg, std::vector<std::string>& errors) {
  const std::size_t before = errors.size();
  for (auto& e : config::validate_config(cfg)) errors.push_back(std::move(e));
  for (auto& e : routing::missing_plugins(cfg.services)) errors.push_back(std::move(e));
  log::Level level;
  if (!log::parse_level(cfg.log_level, level)) errors.push_back("log_level: expected trace|debug|info|warn|error");
  // The config's sources by name; "kubernetes": {"enabled": true} names the built-in one too.
  std::vector<std::string> names = cfg.sources;
  if (cfg.kubernetes.enabled && std::find(names.begin(), names.end(), "kubernetes") == names.end()) {
    names.insert(names.begin(), "kubernetes");
  }
  std::vector<std::unique_ptr<Source>> made;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto listed = std::find(cfg.sources.begin(), cfg.sources.end(), names[i]);
    const std::string at = listed == cfg.sources.end()
                               ? std::string("kubernetes.enabled")
                               : "sources[" + std::to_string(listed - cfg.sources.begin()) + "]";
    auto factory = find_source(names[i]);
    if (!factory) {
      errors.push_back(at + ": no discovery source registered as \"" + names[i] + "\"");
      continue;
    }
    if (auto source = factory(cfg)) {
      made.push_back(std::move(source));
    } else {
      errors.push_back(at + ": the factory of \"" + names[i] + "\" made no source");
    }
  }
  if (errors.size() != before) return nullptr;
  log::set_level(level);
  auto impl = std::make_unique<Impl>(std::move(cfg));
  impl->publish(0, routing::static_model(impl->cfg));
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
  m.health_checker = std::make_unique<proxy::HealthChecker>(m.control, m.table, m.registry);
  m.failover = std::make_unique<proxy::FailoverMonitor>(m.control, m.table);
  proxy::AdminSources admin_sources;
  admin_sources.server = m.server.get();
  admin_sources.table = &m.table;
  admin_sources.last_failover = [f = m.failover.get()](const std::string& id) { return f->last_event(id); };
  admin_sources.extra_metrics = [f = m.failover.get()](std::string& out) { f->render_metrics(out); };
  m.admin = std::make_unique<proxy::Admin>(m.control, std::move(admin_sources));
  if (errors.empty() && m.cfg.admin.enabled) {
    if (auto error = m.admin->listen(m.cfg.admin); !error.empty()) errors.push_back(error);
  }
  // Sources start before the workers accept, so that a source that cannot start leaves nothing running.
  for (std::size_t i = 0; errors.empty() && i < m.sources.size(); ++i) {
    Source* source = m.sources[i].get();
    auto error = source->start([&m, slot = i + 1](routing::Model model) { return m.publish(slot, std::move(model)); });
    if (!error.empty()) {
      errors.push_back("source: " + error);
    } else {
      m.started_sources.push_back(source);
    }
  }
  if (!errors.empty()) {
    for (Source* s : m.started_sources) s->stop();
    m.started_sources.clear();
    m.stopped = true;
    return errors;
  }
  if (m.cfg.admin.enabled) m.admin->start();
  m.server->start();
  m.health_checker->start();
  m.failover->start();
  m.control_thread = std::thread([&m] {
    auto guard = net::make_work_guard(m.control);
    m.control.run();
  });
  return errors;
}

std::vector<std::string> Proxy::publish(routing::Model model) { return impl_->publish(0, std::move(model)); }

routing::Model Proxy::config_model() const { return routing::static_model(impl_->cfg); }

void Proxy::drain() {
  Impl& m = *impl_;
  if (m.admin) m.admin->set_draining();
  m.server->drain();
}

bool Proxy::wait_drained(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (impl_->server->busy() != 0) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(kDrainPoll);
  }
  return true;
}

void Proxy::stop() {
  Impl& m = *impl_;
  std::lock_guard lock(m.lifecycle_mutex);
  if (m.stopped && !m.control_thread.joinable()) return;
  m.stopped = true;
  for (Source* s : m.started_sources) s->stop();
  m.started_sources.clear();
  if (m.control_thread.joinable()) {
    // The control objects belong to the control thread: stop them there, then let it end.
    net::post(m.control, [&m] {
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
