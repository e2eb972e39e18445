#include "discovery/kubernetes_source.hpp"

#include <algorithm>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "discovery/api_probe.hpp"
#include "discovery/credentials.hpp"
#include "discovery/merge.hpp"
#include "discovery/resource_watch.hpp"
#include "discovery/translate.hpp"
#include "log/logger.hpp"

namespace sluice::discovery {

class KubernetesSource::Impl : public WatchSink, public std::enable_shared_from_this<Impl> {
 public:
  Impl(net::io_context& ioc, KubeOptions options, config::ClusterIdentity local, Sink sink)
      : ioc_(ioc), options_(std::move(options)), local_(std::move(local)), sink_(std::move(sink)),
        rebuild_timer_(ioc), initial_timer_(ioc) {
    base_.local = local_;
  }

  std::string start();
  void stop();
  Status status() const;

  void set_base(routing::Model base) {
    base_ = std::move(base);
    base_.local = local_;
    if (started_) mark_dirty();
  }

  void on_replace(Kind kind, const std::string& name_space, const nlohmann::json& items) override {
    for (const auto& error : store_.replace(kind, name_space, items)) malformed(error);
    mark_dirty();
  }

  void on_event(Kind kind, EventType type, const nlohmann::json& object) override {
    if (auto error = store_.apply(kind, type, object); !error.empty()) malformed(error);
    mark_dirty();
  }

  void on_state_changed() override {
    if (!synced_once_ && all_synced()) {
      synced_once_ = true;
      log::info("kubernetes: initial sync complete");
      // Readiness (status().has_synced_once) turns true now, so the full picture must be routable now,
      // not a coalescing window later: a proxy reported ready would otherwise answer "no route" for
      // what it is about to serve.
      rebuild_timer_.cancel();
      rebuild_pending_ = false;
      rebuild(/*coalesced=*/false);
      return;
    }
    if (any_stale() != published_stale_) mark_dirty();
  }

  void on_api_lost() override {
    if (probe_) probe_->start();
  }

  void on_unauthorized() override { reload_credentials(); }

 private:
  void malformed(const std::string& error) {
    ++malformed_;
    log::warn("kubernetes: malformed " + error);
  }

  // A 401: the token (inline or in a file) or the client certificate may have been rotated in the kubeconfig
  // (or the service account): read them again and hand them to every watch for its next attempt. The
  // watches get their 401s at about the same time; one re-read a second serves them all.
  void reload_credentials() {
    const auto now = std::chrono::steady_clock::now();
    if (last_reload_ != std::chrono::steady_clock::time_point{} && now - last_reload_ < std::chrono::seconds(1)) {
      return;
    }
    last_reload_ = now;
    CredentialsResult creds = load_credentials(options_);
    if (!creds.credentials) {
      log::warn("kubernetes: 401 from the API server, and the credentials cannot be read again: " + creds.error);
      return;
    }
    std::string error;
    auto tls = make_tls_context(*creds.credentials, error);
    if (!tls) {
      log::warn("kubernetes: 401 from the API server, and " + creds.credentials->origin + " is unusable: " + error);
      return;
    }
    auto credentials = std::make_shared<const Credentials>(std::move(*creds.credentials));
    for (auto& w : watches_) w->set_credentials(credentials, tls);
    if (probe_) probe_->set_credentials(credentials, tls);
    ++credential_reloads_;
    log::info("kubernetes: 401 from the API server: credentials read again from " + credentials->origin);
  }

  bool all_synced() const {
    for (const auto& w : watches_)
      if (!w->status().synced && !w->status().absent) return false;
    return !watches_.empty();
  }

  bool any_stale() const {
    for (const auto& w : watches_)
      if (w->status().stale && !w->status().absent) return true;
    return false;
  }

  // Coalescing: the first change arms the timer; later ones within the window ride along.
  void mark_dirty() {
    if (rebuild_pending_ || stopped_ || !started_) return;
    rebuild_pending_ = true;
    dirty_since_ = std::chrono::steady_clock::now();
    rebuild_timer_.expires_after(options_.coalesce);
    rebuild_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->rebuild_pending_ = false;
      self->rebuild();
    });
  }

  // coalesced: called by the coalescing timer (whose window is not counted in the publish latency).
  void rebuild(bool coalesced = true) {
    if (stopped_) return;
    // Until every resource has listed once, a partial picture would route wrongly (services without
    // their endpoints yet); wait, unless the initial sync takes too long.
    if (!synced_once_ && !initial_timeout_passed_) return;
    bool stale = any_stale() || !synced_once_;
    Translation t = translate(store_, translate_options_);
    services_ = t.services.size();
    routing::Model model = merge_model(base_, std::move(t), stale);
    published_stale_ = stale;
    ++publishes_;
    if (sink_) sink_(std::move(model));
    // Event received -> handed over (and, when the sink builds the snapshot, routable), without the
    // coalescing window.
    auto took = std::chrono::steady_clock::now() - dirty_since_ -
                (coalesced ? options_.coalesce : std::chrono::milliseconds(0));
    last_publish_latency_ = std::max(std::chrono::duration_cast<std::chrono::microseconds>(took),
                                     std::chrono::microseconds(0));
  }

  net::io_context& ioc_;
  KubeOptions options_;
  config::ClusterIdentity local_;
  Sink sink_;
  routing::Model base_;
  ObjectStore store_;
  TranslateOptions translate_options_;
  std::vector<std::shared_ptr<ResourceWatch>> watches_;
  net::steady_timer rebuild_timer_;
  net::steady_timer initial_timer_;
  std::shared_ptr<ApiProbe> probe_;
  std::chrono::steady_clock::time_point last_reload_{};
  std::uint64_t credential_reloads_ = 0;
  std::string origin_;
  bool started_ = false;
  bool stopped_ = false;
  bool rebuild_pending_ = false;
  bool synced_once_ = false;
  bool initial_timeout_passed_ = false;
  bool published_stale_ = false;
  std::uint64_t publishes_ = 0;
  std::uint64_t malformed_ = 0;
  std::uint64_t services_ = 0;
  std::chrono::steady_clock::time_point dirty_since_{};
  std::chrono::microseconds last_publish_latency_{0};
};

std::string KubernetesSource::Impl::start() {
  if (started_) return {};
  CredentialsResult creds = load_credentials(options_);
  if (!creds.credentials) return "kubernetes: " + creds.error;
  std::string error;
  auto tls = make_tls_context(*creds.credentials, error);
  if (!tls) return "kubernetes: " + creds.credentials->origin + ": " + error;
  origin_ = creds.credentials->origin;
  translate_options_.local = local_;
  translate_options_.sidecar_listeners = options_.sidecar_listeners;
  translate_options_.gateway_listeners = options_.gateway_listeners;
  translate_options_.home_namespace = creds.credentials->default_namespace;
  auto credentials = std::make_shared<const Credentials>(std::move(*creds.credentials));

  std::vector<std::string> namespaces = options_.namespaces;
  if (namespaces.empty()) namespaces.push_back("");  // cluster-wide
  for (const auto& info : watched_resources())
    for (const auto& ns : namespaces)
      watches_.push_back(std::make_shared<ResourceWatch>(ioc_.get_executor(), info, ns, credentials, tls, options_,
                                                         std::weak_ptr<WatchSink>(shared_from_this())));
  std::weak_ptr<Impl> weak = shared_from_this();
  probe_ = std::make_shared<ApiProbe>(
      ioc_.get_executor(), tls, credentials,
      [weak] {
        auto self = weak.lock();
        return self && std::any_of(self->watches_.begin(), self->watches_.end(),
                                   [](const auto& w) { return w->waiting_for_api(); });
      },
      [weak] {
        if (auto self = weak.lock()) {
          for (auto& w : self->watches_) w->wake();
        }
      });
  started_ = true;
  log::info("kubernetes: watching " + std::string(options_.namespaces.empty() ? "all namespaces" : "namespaces") +
            " via " + origin_);
  for (auto& w : watches_) w->start();
  initial_timer_.expires_after(options_.initial_sync_timeout);
  initial_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    auto self = weak.lock();
    if (!self || ec || self->synced_once_) return;
    self->initial_timeout_passed_ = true;
    log::warn("kubernetes: initial sync incomplete; publishing what is known, flagged stale");
    self->mark_dirty();
  });
  return {};
}

void KubernetesSource::Impl::stop() {
  if (stopped_) return;
  stopped_ = true;
  rebuild_timer_.cancel();
  initial_timer_.cancel();
  if (probe_) probe_->stop();
  for (auto& w : watches_) w->stop();
}

Status KubernetesSource::Impl::status() const {
  Status s;
  s.origin = origin_;
  s.started = started_ && !stopped_;
  s.has_synced_once = synced_once_;
  s.stale = any_stale();
  s.publishes = publishes_;
  s.malformed_objects = malformed_;
  s.services = services_;
  s.last_publish_latency = last_publish_latency_;
  s.api_probes = probe_ ? probe_->probes() : 0;
  s.api_returns = probe_ ? probe_->wakes() : 0;
  s.credential_reloads = credential_reloads_;
  for (const auto& w : watches_) {
    ResourceStatus r = w->status();
    r.objects = store_.count(w->info().kind);
    s.resources.push_back(std::move(r));
  }
  return s;
}

KubernetesSource::KubernetesSource(net::io_context& control_ioc, KubeOptions options, config::ClusterIdentity local,
                                   Sink sink)
    : impl_(std::make_shared<Impl>(control_ioc, std::move(options), std::move(local), std::move(sink))) {}

KubernetesSource::~KubernetesSource() { impl_->stop(); }

void KubernetesSource::set_base(routing::Model base) { impl_->set_base(std::move(base)); }
std::string KubernetesSource::start() { return impl_->start(); }
void KubernetesSource::stop() { impl_->stop(); }
Status KubernetesSource::status() const { return impl_->status(); }

}  // namespace sluice::discovery
