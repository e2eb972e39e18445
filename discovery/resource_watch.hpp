// The list+watch loop of one resource (in one namespace or cluster-wide) against the API server.
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json_fwd.hpp>

#include "discovery/api_client.hpp"
#include "discovery/backoff.hpp"
#include "discovery/object_store.hpp"
#include "discovery/options.hpp"
#include "discovery/status.hpp"

namespace sluice::discovery {

struct ResourceInfo {
  Kind kind;
  std::string api_prefix;  // "/api/v1" or "/apis/<group>/<version>"
  std::string plural;      // "services"
  std::string display;     // "services", "serviceimports.flomesh.io" (kubectl's resource.group)
};

// The six resources discovery watches, in a fixed order.
const std::vector<ResourceInfo>& watched_resources();

// Receives what a watch learns. Implemented by the Kubernetes source; control thread only.
class WatchSink {
 public:
  virtual ~WatchSink() = default;
  // A full list of `kind` in `name_space` (empty: all) replaces what was known there.
  virtual void on_replace(Kind kind, const std::string& name_space, const nlohmann::json& items) = 0;
  virtual void on_event(Kind kind, EventType type, const nlohmann::json& object) = 0;
  // The watch's status changed (synced, stale, connected): the source may need to republish.
  virtual void on_state_changed() = 0;
  // The watch lost the API server (connect refused, reset, timeout) and is backing off: the source probes
  // the server to wake every watch when it returns (api_probe.hpp).
  virtual void on_api_lost() {}
  // The API server answered 401: the source re-reads the credentials (set_credentials) before the watch's
  // next attempt.
  virtual void on_unauthorized() {}
};

// Lifetime: owned by shared_ptr; its coroutine keeps it alive until stop() has taken effect. The sink is
// held weakly and never called after it is gone.
class ResourceWatch : public std::enable_shared_from_this<ResourceWatch> {
 public:
  ResourceWatch(net::any_io_executor executor, ResourceInfo info, std::string name_space,
                std::shared_ptr<const Credentials> credentials, std::shared_ptr<ssl::context> tls,
                const KubeOptions& options, std::weak_ptr<WatchSink> sink);

  // Starts the loop: list (paginated), then watch from the list's resourceVersion; relist on 410;
  // reconnect with backoff on failure; retry slowly on 404. Control thread.
  void start();
  // Stops the loop and closes the connection. Control thread.
  void stop();

  // Ends a backoff wait that follows the loss of the API server: the next attempt starts now (the source's
  // probe saw the server answer again). Any other wait is left alone. Control thread.
  void wake();
  // True while the watch backs off after losing the API server. Control thread.
  bool waiting_for_api() const { return waiting_for_api_; }
  // Credentials re-read after a 401: used from the next connection on. Control thread.
  void set_credentials(std::shared_ptr<const Credentials> credentials, std::shared_ptr<ssl::context> tls);

  const ResourceStatus& status() const { return status_; }
  const ResourceInfo& info() const { return info_; }

 private:
  enum class Outcome { ok, gone, absent, failed, failed_relist, stopped };

  net::awaitable<void> run();
  net::awaitable<Outcome> list();
  net::awaitable<Outcome> watch();
  net::awaitable<void> sleep(milliseconds delay);
  // The backoff wait after a failure; wake() ends it early when the failure lost the API server.
  net::awaitable<void> backoff_sleep();
  std::string path() const;
  void fail(const std::string& error);
  void unauthorized();
  void set_stale(bool stale);
  bool handle_line(std::string_view line, Outcome& outcome);

  ResourceInfo info_;
  std::string name_space_;
  KubeOptions options_;
  std::weak_ptr<WatchSink> sink_;
  ApiConnection connection_;
  net::steady_timer timer_;
  Backoff backoff_;
  std::mt19937_64 rng_{std::random_device{}()};
  std::string resource_version_;
  bool stopped_ = false;
  bool absent_warned_ = false;
  bool listed_once_ = false;
  bool watched_once_ = false;
  bool transport_failure_ = false;  // the last failure was the connection's (no HTTP answer)
  bool waiting_for_api_ = false;    // in backoff_sleep() after such a failure
  ResourceStatus status_;
};

}  // namespace sluice::discovery
