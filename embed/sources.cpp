// The discovery-source registry of the embedding API, and the built-in "kubernetes" source: the
// discovery module's KubernetesSource on a control thread of its own.
#include <map>
#include <mutex>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "discovery/from_config.hpp"
#include "discovery/kubernetes_source.hpp"
#include "net/net.hpp"
#include "proxy/logger.hpp"
#include "sluice/sluice.hpp"

namespace sluice {
namespace {

// The name the built-in Kubernetes source is registered under ("sources": ["kubernetes"]).
constexpr std::string_view kKubernetes = "kubernetes";

class KubernetesAdapter final : public Source {
 public:
  explicit KubernetesAdapter(const config::Config& cfg) : cfg_(cfg) {}
  ~KubernetesAdapter() override { stop(); }

  std::string start(std::function<std::vector<std::string>(routing::Model)> publish) override {
    auto options = discovery::kube_options_from(cfg_);
    options.log = [](int level, std::string_view message) {
      const auto l = level >= discovery::log_error  ? log::Level::error
                     : level >= discovery::log_warn ? log::Level::warn
                     : level >= discovery::log_info ? log::Level::info
                                                    : log::Level::debug;
      if (log::enabled(l)) log::write(l, std::string("kubernetes: ").append(message));
    };
    kube_ = std::make_unique<discovery::KubernetesSource>(
        ioc_, std::move(options), cfg_.cluster,
        [publish = std::move(publish)](routing::Model model) {
          for (const auto& problem : publish(std::move(model))) log::warn("kubernetes: " + problem);
        });
    // Before the thread runs, this thread is the source's control thread.
    kube_->set_base(routing::static_model(cfg_));
    if (auto error = kube_->start(); !error.empty()) {
      kube_.reset();
      return "kubernetes: " + error;
    }
    thread_ = std::thread([this] {
      auto guard = net::make_work_guard(ioc_);
      ioc_.run();
    });
    return {};
  }

  void stop() override {
    if (!thread_.joinable()) return;
    net::post(ioc_, [this] {
      kube_->stop();
      ioc_.stop();
    });
    thread_.join();
    kube_.reset();
  }

 private:
  config::Config cfg_;
  net::io_context ioc_{1};
  std::unique_ptr<discovery::KubernetesSource> kube_;
  std::thread thread_;
};

// Registrations are rare and looked up when a proxy is built: one mutex.
struct Sources {
  std::mutex mutex;
  std::map<std::string, SourceFactory, std::less<>> factories;
};

Sources& sources() {
  static Sources s;
  return s;
}

}  // namespace

bool register_source(const std::string& name, SourceFactory factory) {
  if (name.empty() || !factory) return false;
  Sources& s = sources();
  std::lock_guard lock(s.mutex);
  s.factories[name] = std::move(factory);
  return true;
}

bool unregister_source(const std::string& name) {
  Sources& s = sources();
  std::lock_guard lock(s.mutex);
  return s.factories.erase(name) > 0;
}

SourceFactory find_source(std::string_view name) {
  {
    Sources& s = sources();
    std::lock_guard lock(s.mutex);
    if (auto it = s.factories.find(name); it != s.factories.end()) return it->second;
  }
  if (name == kKubernetes) {
    return [](const config::Config& cfg) -> std::unique_ptr<Source> { return std::make_unique<KubernetesAdapter>(cfg); };
  }
  return nullptr;
}

}  // namespace sluice
