// The sluice binary: flags, signals and file watching around a sluice::Proxy (embed/), which checks the
// config and wires the routing table, workers, admin endpoint, health checks, failover events and
// discovery. It includes public headers only (as installed with libsluice; tests/proxy/test_embedded.py
// builds it against the installed tree).
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <iostream>
#include <optional>
#include <string>

#include "log/logger.hpp"
#include "sluice/sluice.hpp"
#if SLUICE_WITH_SYNC
#include "sync/sync.hpp"
#endif

#if SLUICE_JEMALLOC
// jemalloc's options, read when it starts. A background thread returns memory freed after a burst (closed
// connections, pooled ones gone cold) to the system once the decay time (10 s) passed; without it jemalloc
// purges only on allocator calls, so an idle process kept its peak: RSS after a c256 mutual-TLS burst stayed
// at 81 MiB, and fell to 21-23 MiB 15 s later with the thread (tests/bench/README.md, session 11). One
// thread: the default starts one per CPU.
extern "C" const char* malloc_conf = "background_thread:true,max_background_threads:1";
#endif

namespace {

using namespace sluice;

constexpr std::string_view kUsage = R"(Usage: sluice --config FILE [options]
       sluice sync --config FILE [options]   (the multi-cluster control plane: sluice sync --help)

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
      std::cout << "sluice " << sluice::version() << "\n";
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
        if (n < 1 || n > config::Config::max_workers) throw std::out_of_range("workers");
        flags.workers = static_cast<unsigned>(n);
      } catch (const std::exception&) {
        std::cerr << "sluice: --workers: expected 1.." << config::Config::max_workers << ", got \"" << *v << "\"\n";
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
  if (log::Level level; flags.log_level && !log::parse_level(*flags.log_level, level)) {
    std::cerr << "sluice: log level: expected trace|debug|info|warn|error, got \"" << *flags.log_level << "\"\n";
    return flags.check ? 1 : 2;
  }
  return std::nullopt;
}


// Modification time of `path` in nanoseconds; 0 when it cannot be read.
long long file_mtime(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

// How often certificates and the config file are looked at.
constexpr auto kWatchInterval = std::chrono::seconds(2);

// SIGHUP: re-read the config file and publish its routing. Listener, admin and worker changes need a restart.
void reload(const std::string& path, sluice::Proxy& proxy) {
  std::vector<std::string> errors;  // each "PATH: json.path: problem"
  auto cfg = sluice::load_config(path, errors);
  if (cfg) {
    if (cfg->listeners.size() != proxy.config().listeners.size()) {
      log::warn("reload: listener changes take effect on restart only");
    }
    for (const auto& e : proxy.reload(*cfg)) errors.push_back(path + ": " + e);
  }
  if (!errors.empty()) {
    for (const auto& e : errors) log::error("reload: " + e);
    log::error("reload refused: keeping the running configuration");
    return;
  }
  log::info("reload: " + std::to_string(cfg->services.size()) + " service(s), " +
            std::to_string(cfg->routes.size()) + " route(s) from " + path);
}

// Signals are taken by the main thread with sigtimedwait. They are blocked before the proxy starts a
// thread, so that every thread inherits the mask and none is interrupted by them.
sigset_t block_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int signo : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, signo);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Waits for one of `set` until `deadline`; returns it, or 0 when the deadline passed (or on EINTR).
int wait_signal(const sigset_t& set, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::max(std::chrono::nanoseconds(0), deadline - std::chrono::steady_clock::now());
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(left);
  timespec timeout{};
  timeout.tv_sec = static_cast<std::time_t>(seconds.count());
  timeout.tv_nsec = static_cast<long>((left - seconds).count());
  const int signo = sigtimedwait(&set, nullptr, &timeout);
  return signo > 0 ? signo : 0;
}

// Raises the soft limit on open descriptors to the hard one, as Go programs and HAProxy do at start: each
// request in flight holds two sockets and the upstream pool keeps idle ones, and a shell's soft limit
// (often 1024) is far below what the hard limit (and epoll) allows. The embedding library leaves process
// limits alone; this is the binary's business.
void raise_descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  const auto before = lim.rlim_cur;
  // An unlimited hard limit still stops at the kernel's fs.nr_open (1048576 by default).
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? 1048576 : lim.rlim_max;
  if (lim.rlim_cur <= before) return;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    log::warn("open descriptor limit stays at " + std::to_string(before) + ": could not raise it to " +
              std::to_string(lim.rlim_cur));
    return;
  }
  log::info("open descriptor limit raised from " + std::to_string(before) + " to " + std::to_string(lim.rlim_cur));
}

}  // namespace

int main(int argc, char** argv) {
#if SLUICE_WITH_SYNC
  // `sluice sync ...`: the multi-cluster control plane (sync/), its own flags and life.
  if (argc > 1 && std::string_view(argv[1]) == "sync") return sluice::sync::run_cli(argc - 1, argv + 1);
#endif
  Flags flags;
  if (auto code = parse_flags(argc, argv, flags)) return *code;

  // The binary registers no plugins: a service naming one is served with the built-in policy. It
  // registers no discovery sources either: the config may name the built-in "kubernetes" only.
  sluice::ProxyOptions options;
  options.fall_back_on_missing_plugins = true;
  std::vector<std::string> errors;  // each "PATH: json.path: problem"
  auto cfg = sluice::load_config(flags.config_path, errors);
  if (cfg) {
    if (flags.workers) cfg->workers = *flags.workers;
    if (flags.log_level) cfg->log_level = *flags.log_level;
    for (const auto& e : sluice::check_config(*cfg, options)) errors.push_back(flags.config_path + ": " + e);
  }
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << e << "\n";
    if (flags.check) std::cout << errors.size() << " error(s)\n";
    return 1;
  }
  if (flags.check) {
    std::cout << "config OK\n";
    return 0;
  }
  const sigset_t signals = block_signals();
  auto proxy = sluice::Proxy::from_config(std::move(*cfg), errors, options);
  if (!proxy) {
    for (const auto& e : errors) std::cerr << flags.config_path << ": " << e << "\n";
    return 1;
  }
  raise_descriptor_limit();
  // With Kubernetes discovery the workers accept only after the first full sync (or 10 s, options'
  // default), so that a gateway does not answer "no route" to routable requests meanwhile.
  if (errors = proxy->start(); !errors.empty()) {
    for (const auto& e : errors) log::error(e);
    return 1;
  }

  // Certificates and the config file are followed: checked every few seconds; new certificates are swapped
  // in for new connections, a changed config file is reloaded as on SIGHUP.
  auto config_mtime = file_mtime(flags.config_path);
  auto next_check = std::chrono::steady_clock::now() + kWatchInterval;
  int signo = 0;
  for (;;) {
    signo = wait_signal(signals, next_check);
    if (signo == SIGTERM || signo == SIGINT) break;
    if (signo == SIGHUP) {
      reload(flags.config_path, *proxy);
      continue;
    }
    if (std::chrono::steady_clock::now() < next_check) continue;
    for (const auto& line : proxy->reload_tls()) log::info(line);
    if (const auto m = file_mtime(flags.config_path); m != config_mtime) {
      config_mtime = m;
      log::info("config file " + flags.config_path + " changed");
      reload(flags.config_path, *proxy);
    }
    next_check = std::chrono::steady_clock::now() + kWatchInterval;
  }

  const auto drain = proxy->config().timeouts.drain;
  log::info(std::string("received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") + ", draining (up to " +
            std::to_string(drain.count()) + " ms)");
  // Readiness goes first (drain()), so load balancers stop sending before the listeners close.
  proxy->drain();
  if (!proxy->wait_drained(drain)) {
    log::warn("drain timeout: " + std::to_string(proxy->stats().active_requests) + " request(s) cut");
  }
  proxy->stop();
  log::info("sluice stopped");
  return 0;
}
