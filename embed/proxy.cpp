// sluice::Proxy: the same wiring as the sluice binary (config -> routing table -> server -> admin), with
// the control thread owned by the proxy and routing fed by the program instead of files and signals.
#include <mutex>
#include <thread>

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
#include "sluice/sluice.hpp"

namespace sluice {
namespace {

// How often wait_drained() looks at the requests in flight.
constexpr auto kDrainPoll = std::chrono::milliseconds(20);

}  // namespace

struct Proxy::Impl {
  explicit Impl(config::Config c) : cfg(std::move(c)), publisher(table, registry) {}

  config::Config cfg;
  routing::Table table;
  routing::EndpointRegistry registry;
  routing::Publisher publisher;
  std::mutex publish_mutex;  // one build and publication at a time, from any thread

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

  std::vector<std::string> publish(routing::Model model) {
    auto problems = routing::missing_plugins(model.services);
    std::lock_guard lock(publish_mutex);
    publisher.submit(std::move(model));
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
  if (errors.size() != before) return nullptr;
  log::set_level(level);
  auto impl = std::make_unique<Impl>(std::move(cfg));
  impl->publish(routing::static_model(impl->cfg));
  impl->server = std::make_unique<proxy::Server>(impl->cfg, impl->table);
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

void Proxy::add_source(std::unique_ptr<Source> source) {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (!impl_->started && source) impl_->sources.push_back(std::move(source));
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
  if (!errors.empty()) {
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
  for (auto& source : m.sources) {
    auto error = source->start([&m](routing::Model model) { return m.publish(std::move(model)); });
    if (!error.empty()) {
      errors.push_back("source: " + error);
      continue;
    }
    m.started_sources.push_back(source.get());
  }
  return errors;
}

std::vector<std::string> Proxy::publish(routing::Model model) { return impl_->publish(std::move(model)); }

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
