// The discovery-source registry of the embedding API, and the built-in "kubernetes" source: the
// discovery module's KubernetesSource on the proxy's control thread (or, started outside a Proxy, on a
// control thread of its own).
#include <algorithm>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <nlohmann/json.hpp>

#include "discovery/from_config.hpp"
#include "discovery/kubernetes_source.hpp"
#include "discovery/status.hpp"
#include "embed/control_source.hpp"
#include "embed/sources.hpp"
#include "log/logger.hpp"
#include "net/net.hpp"
#include "routing/named_registry.hpp"
#include "sluice/sluice.hpp"

namespace sluice {
namespace {

// The name the built-in Kubernetes source is registered under ("sources": ["kubernetes"]).
constexpr std::string_view kKubernetes = "kubernetes";

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

class KubernetesAdapter final : public Source, public ControlSource {
 public:
  explicit KubernetesAdapter(const config::Config& cfg) : cfg_(cfg), base_(routing::static_model(cfg)) {}
  ~KubernetesAdapter() override { stop(); }

  ControlSource* control_side() override { return this; }

  void attach(net::io_context& control) override { control_ = &control; }

  std::string start(std::function<std::vector<std::string>(routing::Model)> publish) override {
    kube_ = std::make_unique<discovery::KubernetesSource>(
        control_ ? *control_ : own_ioc_, discovery::kube_options_from(cfg_), cfg_.cluster,
        [publish = std::move(publish)](routing::Model model) {
          for (const auto& problem : publish(std::move(model))) log::warn("kubernetes: " + problem);
        });
    // Before the control thread runs, this thread is the source's control thread.
    kube_->set_base(base_);
    if (auto error = kube_->start(); !error.empty()) {
      kube_.reset();
      return "kubernetes: " + error;
    }
    if (!control_) {
      thread_ = std::thread([this] {
        auto guard = net::make_work_guard(own_ioc_);
        own_ioc_.run();
      });
    }
    return {};
  }

  void stop() override {
    if (control_) {  // on the proxy's control thread (see ControlSource)
      if (kube_) kube_->stop();
      kube_.reset();
      return;
    }
    if (!thread_.joinable()) return;
    net::post(own_ioc_, [this] {
      kube_->stop();
      own_ioc_.stop();
    });
    thread_.join();
    kube_.reset();
  }

  void set_base(routing::Model base) override {
    base_ = base;
    if (kube_) kube_->set_base(std::move(base));
  }

  bool synced() const override { return !kube_ || kube_->status().has_synced_once; }

  void render_metrics(prometheus::Writer& out) const override {
    if (kube_) discovery::render_prometheus(kube_->status(), out);
  }

  void add_status(nlohmann::json& status) const override {
    if (kube_) status["discovery"] = status_json(kube_->status());
  }

 private:
  config::Config cfg_;
  routing::Model base_;
  net::io_context* control_ = nullptr;  // the proxy's; null: own_ioc_ on thread_
  net::io_context own_ioc_{1};
  std::unique_ptr<discovery::KubernetesSource> kube_;
  std::thread thread_;
};

routing::NamedRegistry<SourceFactory>& sources() {
  static routing::NamedRegistry<SourceFactory> registry;
  return registry;
}

}  // namespace

bool register_source(const std::string& name, SourceFactory factory) {
  return sources().add(name, std::move(factory));
}

bool unregister_source(const std::string& name) { return sources().remove(name); }

std::vector<std::string> source_names() {
  auto names = sources().names();
  names.emplace_back(kKubernetes);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

SourceFactory find_source(std::string_view name) {
  if (auto registered = sources().find(name)) return registered;
  if (name == kKubernetes) {
    return [](const config::Config& cfg) -> std::unique_ptr<Source> { return std::make_unique<KubernetesAdapter>(cfg); };
  }
  return nullptr;
}

}  // namespace sluice
