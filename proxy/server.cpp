#include "proxy/server.hpp"

#include <thread>

#include "log/logger.hpp"
#include "proxy/drained.hpp"

namespace sluice::proxy {

Server::Server(const config::Config& cfg, const routing::Table& table, net::io_context* external)
    : cfg_(cfg), table_(table) {
  settings_.limits = cfg_.limits;
  settings_.timeouts = cfg_.timeouts;
  settings_.upstream = cfg_.upstream;
  settings_.local_cluster = cfg_.cluster.key();
  settings_.mesh_tls = cfg_.mesh_tls;
  if (external) {
    workers_.push_back(std::make_unique<Worker>(0, settings_, table_, external));
  } else {
    unsigned n = cfg_.workers;
    if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(i, settings_, table_));
  }
  // Before any worker runs: each tells idle_ when its last request in flight ends (wait_idle).
  for (auto& w : workers_) w->stats().active_requests.idle = &idle_;
}

Server::~Server() { stop(); }

std::vector<std::string> Server::bind() {
  std::vector<std::string> errors;
  if (cfg_.access_log.enabled) {
    std::string error;
    if (!access_log_.open(cfg_.access_log.path, error)) {
      errors.push_back(error);
    } else {
      settings_.access_log = &access_log_;
    }
  }
  for (const auto& l : cfg_.listeners) {
    auto info = std::make_shared<ListenerInfo>();
    info->cfg = l;
    // A gateway without its own tls terminates mesh mTLS when the config switches it on.
    std::optional<config::TlsServer> tls = l.tls;
    if (!tls && l.role == config::Role::gateway && cfg_.mesh_tls) {
      tls = config::TlsServer{cfg_.mesh_tls->cert_file, cfg_.mesh_tls->key_file, cfg_.mesh_tls->ca_file};
    }
    if (tls) {
      auto server_tls = std::make_shared<ServerTls>(*tls);
      if (auto error = server_tls->load(); !error.empty()) {
        errors.push_back("listener " + l.name + ": " + error);
        continue;
      }
      info->tls = server_tls;
      listener_tls_.push_back(server_tls);
    }
    for (auto& w : workers_) {
      auto error = w->add_listener(info);
      if (!error.empty()) {
        errors.push_back(error);
        break;
      }
    }
  }
  return errors;
}

std::vector<std::string> Server::check_tls_reload() {
  std::vector<std::string> lines;
  for (auto& t : listener_tls_) {
    if (auto line = t->check_reload(); !line.empty()) lines.push_back(std::move(line));
  }
  return lines;
}

void Server::start() {
  log_mark_drained_status();
  for (auto& w : workers_) w->start();
  log::info("sluice serving on " + std::to_string(cfg_.listeners.size()) + " listener(s) with " +
            std::to_string(workers_.size()) + " worker(s)");
}

void Server::drain() {
  draining_.store(true, std::memory_order_relaxed);
  for (auto& w : workers_) w->drain();
}

std::int64_t Server::busy() const {
  std::int64_t n = 0;
  for (const auto& w : workers_) n += w->busy();
  return n;
}

bool Server::wait_idle(std::chrono::steady_clock::time_point deadline) {
  return idle_.wait_until(deadline, [this] { return busy() == 0; });
}

void Server::stop() {
  for (auto& w : workers_) w->stop();
}

}  // namespace sluice::proxy
