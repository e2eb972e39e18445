// One member cluster as `sluice sync` sees it: list+watch of its ServiceExports, Services and
// flomesh.io ServiceImports through discovery's ResourceWatch (backoff, 410 relist, bookmarks,
// credentials), the raw objects last known (JSON, as the API returned them: sync needs
// creationTimestamp, labels and resourceVersion), and one connection for writes.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "discovery/api_client.hpp"
#include "discovery/resource_watch.hpp"
#include "sync/config.hpp"
#include "sync/desired.hpp"

namespace sluice::sync {

using Clock = std::chrono::steady_clock;
using Objects = std::map<std::string, nlohmann::json>;  // "namespace/name" -> object

class Member : public discovery::WatchSink, public std::enable_shared_from_this<Member> {
 public:
  // `on_change(key)`: an object of that "namespace/name" changed (any kind); `on_state()`: the
  // member's sync or reachability changed. Both on the control thread.
  // `mcs`: also watch EndpointSlices and multicluster.x-k8s.io ServiceImports (the MCS form).
  Member(net::any_io_executor executor, MemberConfig config, bool mcs,
         std::function<void(const std::string&)> on_change, std::function<void()> on_state);

  // Loads credentials and starts the three watches; "" or an error naming the member and file.
  std::string start();
  void stop();

  const MemberConfig& config() const { return config_; }
  const std::string& key() const { return key_; }
  Gateway gateway() const { return gateway_; }
  void set_gateway_ip(std::string ip) { gateway_.ip = std::move(ip); }
  // A new gateway from a reloaded config: the IP is the host when it is a literal, else unknown until
  // the next resolution. Returns whether anything changed.
  bool set_gateway(const std::string& host, std::uint16_t port);

  // Every resource listed once since start (a 404, CRD not installed, counts: nothing there).
  bool synced() const;
  // Synced and no watch failing now.
  bool reachable() const;
  // When the member stopped being reachable (Clock::time_point{} while reachable or never synced).
  Clock::time_point unreachable_since() const { return unreachable_since_; }

  const Objects& exports() const { return exports_; }
  const Objects& services() const { return services_; }
  const Objects& imports() const { return imports_; }
  const Objects& slices() const { return slices_; }          // with mcs only
  const Objects& mcs_imports() const { return mcs_imports_; }  // with mcs only
  const Objects& objects(discovery::Kind kind) const;

  // Records an object this process wrote (the API's answer) or read after a 409, so that the next
  // reconcile compares against it without waiting for the watch event; nullptr `object`: deleted.
  void remember(discovery::Kind kind, const std::string& key, const nlohmann::json* object);

  // The connection writes go through (one reconcile at a time uses it).
  discovery::ApiConnection& writer() { return *writer_; }
  std::vector<discovery::ResourceStatus> watch_status() const;

  // WatchSink
  void on_replace(discovery::Kind kind, const std::string& name_space, const nlohmann::json& items) override;
  void on_event(discovery::Kind kind, discovery::EventType type, const nlohmann::json& object) override;
  void on_state_changed() override;

 private:
  Objects* objects_of(discovery::Kind kind);
  void update_reachability();

  net::any_io_executor executor_;
  MemberConfig config_;
  std::string key_;
  Gateway gateway_;
  std::function<void(const std::string&)> on_change_;
  std::function<void()> on_state_;
  std::vector<std::shared_ptr<discovery::ResourceWatch>> watches_;
  std::unique_ptr<discovery::ApiConnection> writer_;
  bool mcs_ = false;
  Objects exports_, services_, imports_, slices_, mcs_imports_;
  bool was_reachable_ = false;
  Clock::time_point unreachable_since_{};
};

// "namespace/name" of an object; empty when its metadata lacks them.
std::string object_key(const nlohmann::json& object);

// The service key ("namespace/name") an object belongs to: its own for Services, exports and imports;
// for EndpointSlices the kubernetes.io/service-name (else multicluster.kubernetes.io/service-name)
// label's. Empty when none.
std::string service_key(discovery::Kind kind, const nlohmann::json& object);

}  // namespace sluice::sync
