// The sluice binary: flags, config, routing table, workers, signals.
// It wires the modules and owns nothing of their logic.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/parse.hpp"
#include "discovery/from_config.hpp"
#include "discovery/kubernetes_source.hpp"
#include "discovery/status.hpp"
#include "proxy/admin.hpp"
#include "proxy/failover_monitor.hpp"
#include "proxy/health_checker.hpp"
#include "proxy/logger.hpp"
#include "proxy/server.hpp"
#include "routing/model.hpp"
#include "routing/publisher.hpp"
#include "routing/registry.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"

namespace {

using namespace sluice;

constexpr std::string_view kVersion = "sluice 0.1.0";

constexpr std::string_view kUsage = R"(Usage: sluice --config FILE [options]

An HTTP/1.1 L7 proxy for multi-cluster service meshes.

Options:
  -c, --config FILE      JSON configuration (see config/README.md)
      --check            validate the configuration, print "config OK" or every error, exit 0/1
  -w, --workers N        worker threads (default: the config's "workers", else one per core)
  -l, --log-level LEVEL  trace|debug|info|warn|error (default: the config's "log_level", else info)
  -v, --version          print the version and exit
  -h, --help             print this help and exit

Signals: SIGTERM/SIGINT drain and exit 0; SIGHUP (or a change of FILE) reloads the config's routing
(services, routes).
)";

struct Flags {
  std::string config_path;
  bool check = false;
  std::optional<unsigned> workers;
  std::optional<std::string> log_level;
};

// Returns the exit code to leave with, or nullopt to go on.
std::optional<int> parse_flags(int argc, char** argv, Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> std::optional<std::string> {
      if (i + 1 >= argc) {
        std::cerr << "sluice: " << name << " needs a value\n";
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "-v" || arg == "--version") {
      std::cout << kVersion << "\n";
      return 0;
    }
    if (arg == "--check") {
      flags.check = true;
    } else if (arg == "-c" || arg == "--config") {
      auto v = value(arg);
      if (!v) return 2;
      flags.config_path = *v;
    } else if (arg == "-w" || arg == "--workers") {
      auto v = value(arg);
      if (!v) return 2;
      try {
        const auto n = std::stoul(*v);
        if (n < 1 || n > 1024) throw std::out_of_range("workers");
        flags.workers = static_cast<unsigned>(n);
      } catch (const std::exception&) {
        std::cerr << "sluice: --workers: expected 1..1024, got \"" << *v << "\"\n";
        return 2;
      }
    } else if (arg == "-l" || arg == "--log-level") {
      auto v = value(arg);
      if (!v) return 2;
      flags.log_level = *v;
    } else {
      std::cerr << "sluice: unknown option \"" << arg << "\"\n" << kUsage;
      return 2;
    }
  }
  if (flags.config_path.empty()) {
    std::cerr << "sluice: --config FILE is required\n" << kUsage;
    return 2;
  }
  return std::nullopt;
}


// Modification time of `path` in nanoseconds; 0 when it cannot be read.
long long file_mtime(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

discovery::KubeOptions kube_options(const config::Config& cfg) {
  auto o = discovery::kube_options_from(cfg);
  o.log = [](int level, std::string_view message) {
    const auto l = level >= discovery::log_error  ? log::Level::error
                   : level >= discovery::log_warn ? log::Level::warn
                   : level >= discovery::log_info ? log::Level::info
                                                  : log::Level::debug;
    if (log::enabled(l)) log::write(l, std::string("kubernetes: ").append(message));
  };
  return o;
}

nlohmann::json status_json(const discovery::Status& st) {
  nlohmann::json resources = nlohmann::json::array();
  for (const auto& r : st.resources) {
    resources.push_back({{"resource", r.resource}, {"namespace", r.name_space}, {"synced", r.synced},
                         {"absent", r.absent}, {"connected", r.connected}, {"stale", r.stale},
                         {"watch_restarts", r.watch_restarts}, {"relists", r.relists}, {"events", r.events},
                         {"objects", r.objects}, {"last_error", r.last_error}});
  }
  return {{"origin", st.origin}, {"synced", st.has_synced_once}, {"stale", st.stale},
          {"publishes", st.publishes}, {"malformed_objects", st.malformed_objects}, {"resources", resources}};
}

// SIGHUP: re-read the config file and publish its routing. Listener, admin and worker changes need a restart.
void reload(const std::string& path, config::Config& current, routing::Publisher& publisher,
            discovery::KubernetesSource* kube) {
  auto parsed = config::load_config_file(path);
  if (!parsed.errors.empty()) {
    for (const auto& e : parsed.errors) log::error("reload: " + path + ": " + e);
    log::error("reload refused: keeping the running configuration");
    return;
  }
  auto& next = *parsed.config;
  if (next.listeners.size() != current.listeners.size()) {
    log::warn("reload: listener changes take effect on restart only");
  }
  current.services = next.services;
  current.routes = next.routes;
  if (kube) {
    kube->set_base(routing::static_model(current));
  } else {
    publisher.submit(routing::static_model(current));
    publisher.flush();
  }
  log::info("reload: " + std::to_string(current.services.size()) + " service(s), " +
            std::to_string(current.routes.size()) + " route(s) from " + path);
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (auto code = parse_flags(argc, argv, flags)) return *code;

  auto parsed = config::load_config_file(flags.config_path);
  if (!parsed.errors.empty()) {
    for (const auto& e : parsed.errors) std::cerr << flags.config_path << ": " << e << "\n";
    if (flags.check) std::cout << parsed.errors.size() << " error(s)\n";
    return 1;
  }
  auto cfg = std::move(*parsed.config);
  if (flags.workers) cfg.workers = *flags.workers;
  if (flags.log_level) cfg.log_level = *flags.log_level;
  log::Level level;
  if (!log::parse_level(cfg.log_level, level)) {
    std::cerr << "sluice: log level: expected trace|debug|info|warn|error, got \"" << cfg.log_level << "\"\n";
    return flags.check ? 1 : 2;
  }
  // Named discovery sources: the binary has the built-in "kubernetes" only; any other is registered by a
  // program that embeds libsluice (sluice::register_source).
  std::size_t unknown_sources = 0;
  for (std::size_t i = 0; i < cfg.sources.size(); ++i) {
    if (cfg.sources[i] == "kubernetes") {
      cfg.kubernetes.enabled = true;
      continue;
    }
    std::cerr << flags.config_path << ": sources[" << i << "]: no discovery source \"" << cfg.sources[i]
              << "\" in the sluice binary (only \"kubernetes\"; others are registered by a program embedding libsluice)\n";
    ++unknown_sources;
  }
  if (unknown_sources != 0) {
    if (flags.check) std::cout << unknown_sources << " error(s)\n";
    return 1;
  }
  if (flags.check) {
    std::cout << "config OK\n";
    return 0;
  }
  log::set_level(level);

  routing::Table table;
  routing::EndpointRegistry registry;
  routing::Publisher publisher(table, registry);
  publisher.submit(routing::static_model(cfg));
  publisher.flush();

  proxy::Server server(cfg, table);
  if (auto errors = server.bind(); !errors.empty()) {
    for (const auto& e : errors) log::error(e);
    return 1;
  }

  // The control thread: discovery, admin, signals.
  net::io_context control;
  std::unique_ptr<discovery::KubernetesSource> kube;
  if (cfg.kubernetes.enabled) {
    kube = std::make_unique<discovery::KubernetesSource>(control, kube_options(cfg), cfg.cluster,
                                                         [&publisher](routing::Model model) {
                                                           publisher.submit(std::move(model));
                                                           publisher.flush();
                                                         });
    kube->set_base(routing::static_model(cfg));
    if (auto error = kube->start(); !error.empty()) {
      log::error("kubernetes: " + error);
      return 1;
    }
  }

  proxy::HealthChecker health_checker(control, table, registry);
  proxy::FailoverMonitor failover(control, table);
  proxy::AdminSources sources;
  sources.server = &server;
  sources.table = &table;
  for (const auto& l : cfg.listeners) {
    if (sources.default_listener.empty() || (l.role == config::Role::sidecar &&
                                             sources.default_listener == cfg.listeners.front().name)) {
      sources.default_listener = l.name;
    }
  }
  sources.last_failover = [&failover](const std::string& id) { return failover.last_event(id); };
  sources.extra_metrics = [&](std::string& out) {
    failover.render_metrics(out);
    out += "# HELP sluice_health_checks_total Active health-check probes sent.\n# TYPE sluice_health_checks_total counter\n";
    out += "sluice_health_checks_total " + std::to_string(health_checker.probes()) + "\n";
    out += "# HELP sluice_health_check_failures_total Active health-check probes that failed.\n";
    out += "# TYPE sluice_health_check_failures_total counter\n";
    out += "sluice_health_check_failures_total " + std::to_string(health_checker.probe_failures()) + "\n";
    if (kube) out += discovery::render_prometheus(kube->status());
  };
  if (kube) {
    sources.synced = [&kube] { return kube->status().has_synced_once; };
    sources.extra_status = [&kube](nlohmann::json& j) { j["discovery"] = status_json(kube->status()); };
  }
  proxy::Admin admin(control, sources);
  if (cfg.admin.enabled) {
    if (auto error = admin.listen(cfg.admin); !error.empty()) {
      log::error(error);
      return 1;
    }
    admin.start();
  }
  // With Kubernetes discovery, workers start accepting only after the first full sync (or 10 s): before
  // it the table is the static part alone and a gateway would answer "no route" to routable requests.
  // Connections meanwhile wait in the listen backlog.
  net::steady_timer start_timer(control);
  const auto start_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::function<void()> start_when_synced = [&] {
    if (!kube || kube->status().has_synced_once || std::chrono::steady_clock::now() >= start_deadline) {
      server.start();
      return;
    }
    start_timer.expires_after(std::chrono::milliseconds(5));
    start_timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) start_when_synced();
    });
  };
  start_when_synced();
  health_checker.start();
  failover.start();

  // Certificates and the config file are followed: checked every few seconds; new certificates are swapped
  // in for new connections, a changed config file is reloaded as on SIGHUP.
  net::steady_timer tls_timer(control);
  auto config_mtime = file_mtime(flags.config_path);
  std::function<void()> watch_tls = [&] {
    tls_timer.expires_after(std::chrono::seconds(2));
    tls_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      for (const auto& line : server.check_tls_reload()) log::info(line);
      if (const auto m = file_mtime(flags.config_path); m != config_mtime) {
        config_mtime = m;
        log::info("config file " + flags.config_path + " changed");
        reload(flags.config_path, cfg, publisher, kube.get());
      }
      watch_tls();
    });
  };
  watch_tls();

  net::signal_set signals(control, SIGTERM, SIGINT);
  net::signal_set reload_signal(control, SIGHUP);
  net::steady_timer drain_timer(control);
  std::chrono::steady_clock::time_point drain_deadline;
  std::function<void()> wait_drained = [&] {
    if (server.busy() == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
      if (server.busy() != 0) log::warn("drain timeout: " + std::to_string(server.busy()) + " request(s) cut");
      control.stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(50));
    drain_timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) wait_drained();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int signo) {
    if (ec) return;
    log::info(std::string("received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") + ", draining (up to " +
              std::to_string(cfg.timeouts.drain.count()) + " ms)");
    // Readiness goes first, so load balancers stop sending before the listeners close.
    admin.set_draining();
    tls_timer.cancel();
    health_checker.stop();
    failover.stop();
    server.drain();
    if (kube) kube->stop();
    drain_deadline = std::chrono::steady_clock::now() + cfg.timeouts.drain;
    wait_drained();
  });
  std::function<void()> wait_reload = [&] {
    reload_signal.async_wait([&](boost::system::error_code ec, int) {
      if (ec) return;
      reload(flags.config_path, cfg, publisher, kube.get());
      wait_reload();
    });
  };
  wait_reload();
  control.run();
  admin.close();
  server.stop();
  log::info("sluice stopped");
  return 0;
}
