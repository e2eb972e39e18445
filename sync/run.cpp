#include <sys/stat.h>

#include <iostream>
#include <functional>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "log/logger.hpp"
#include "sync/admin.hpp"
#include "sync/config.hpp"
#include "sync/controller.hpp"
#include "sync/sync.hpp"

namespace sluice::sync {
namespace {

constexpr std::string_view kUsage = R"(Usage: sluice sync --config FILE [options]

Watches the ServiceExports and Services of every member cluster and writes into each member the
flomesh.io ServiceImports that the sidecars and gateways route by (see sync/README.md).

Options:
  -c, --config FILE      JSON configuration: members (name, region, zone, group, kubeconfig, context,
                         gateway {host, port}), resync_interval, member_ttl, admin {address, port}
      --check            validate the configuration, print "config OK" or every error, exit 0/1
  -l, --log-level LEVEL  trace|debug|info|warn|error (default: the config's "log_level", else info)
  -h, --help             print this help and exit
)";

// Modification time of `path` in nanoseconds; 0 when it cannot be read.
long long file_mtime(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
}

// How often the config file is looked at (as the proxy's binary does).
constexpr auto kWatchInterval = std::chrono::seconds(2);
constexpr auto kReleaseTimeout = std::chrono::seconds(2);

void reload(const std::string& path, Controller& controller) {
  std::vector<std::string> errors;
  auto cfg = load_config(path, errors);
  if (!cfg) {
    for (const auto& e : errors) log::error("reload: " + e);
    log::error("reload refused: keeping the running configuration");
    return;
  }
  for (const auto& w : controller.reload(*cfg)) log::warn("reload: " + w);
  log::info("reload: " + path);
}

}  // namespace

int run_cli(int argc, char** argv) {
  std::string path;
  bool check = false;
  std::optional<std::string> level_flag;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--check") {
      check = true;
    } else if ((arg == "-c" || arg == "--config" || arg == "-l" || arg == "--log-level") && i + 1 < argc) {
      (arg == "-c" || arg == "--config" ? path : level_flag.emplace()) = argv[++i];
    } else {
      std::cerr << "sluice sync: unknown option or missing value \"" << arg << "\"\n" << kUsage;
      return 2;
    }
  }
  if (path.empty()) {
    std::cerr << "sluice sync: --config FILE is required\n" << kUsage;
    return 2;
  }
  std::vector<std::string> errors;
  auto cfg = load_config(path, errors);
  log::Level level = log::Level::info;
  if (cfg && !log::parse_level(level_flag.value_or(cfg->log_level), level))
    errors.push_back(path + ": log_level: expected trace|debug|info|warn|error, got \"" +
                     level_flag.value_or(cfg->log_level) + "\"");
  if (!errors.empty()) {
    for (const auto& e : errors) std::cerr << e << "\n";
    if (check) std::cout << errors.size() << " error(s)\n";
    return 1;
  }
  if (check) {
    std::cout << "config OK\n";
    return 0;
  }
  log::set_level(level);
  boost::asio::io_context ioc;
  auto controller = std::make_shared<Controller>(ioc, *cfg);
  if (std::string error = controller->start(); !error.empty()) {
    log::error("sync: " + error);
    return 1;
  }
  std::unique_ptr<Admin> admin;
  if (cfg->admin_port) {
    std::string error;
    admin = Admin::start(ioc, cfg->admin_address, *cfg->admin_port, controller, error);
    if (!admin) {
      log::error("sync: admin: " + error);
      return 1;
    }
  }
  // SIGHUP, or a change of the file (checked every 2 s), reloads gateways and timings.
  boost::asio::steady_timer file_timer(ioc);
  boost::asio::steady_timer exit_timer(ioc);
  boost::asio::signal_set signals(ioc, SIGTERM, SIGINT, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec,
                                                                             int signo) {
    if (ec) return;
    if (signo == SIGHUP) {
      reload(path, *controller);
      signals.async_wait(on_signal);
      return;
    }
    log::info(std::string("sync: received ") + (signo == SIGTERM ? "SIGTERM" : "SIGINT") + ", stopping");
    if (admin) admin->stop();
    file_timer.cancel();
    // A leader releases its Lease first; at most kReleaseTimeout, so a dead home cluster cannot hold
    // the exit up.
    exit_timer.expires_after(kReleaseTimeout);
    exit_timer.async_wait([&](const boost::system::error_code& e) {
      if (!e) ioc.stop();
    });
    controller->stop([&] { ioc.stop(); });
  };
  signals.async_wait(on_signal);
  auto config_mtime = file_mtime(path);
  std::function<void(const boost::system::error_code&)> check_file = [&](const boost::system::error_code& ec) {
    if (ec) return;
    if (const auto m = file_mtime(path); m != config_mtime) {
      config_mtime = m;
      log::info("sync: config file " + path + " changed");
      reload(path, *controller);
    }
    file_timer.expires_after(kWatchInterval);
    file_timer.async_wait(check_file);
  };
  file_timer.expires_after(kWatchInterval);
  file_timer.async_wait(check_file);
  log::info("sync: " + std::to_string(cfg->members.size()) + " member(s)");
  ioc.run();
  log::info("sync stopped");
  return 0;
}

}  // namespace sluice::sync
