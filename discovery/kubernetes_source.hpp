// The Kubernetes discovery source: watches the cluster's API and publishes routing Models.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "discovery/options.hpp"
#include "discovery/status.hpp"
#include "routing/model.hpp"

namespace boost::asio { class io_context; }

namespace sluice::discovery {

class KubernetesSource {
 public:
  using Sink = std::function<void(routing::Model)>;

  // `control_ioc`: the control thread's io_context; every method and the sink run on that thread.
  // `local`: this cluster's identity (its key marks our own endpoints in ServiceImports).
  KubernetesSource(boost::asio::io_context& control_ioc, KubeOptions options, config::ClusterIdentity local,
                   Sink sink);
  ~KubernetesSource();  // stops
  KubernetesSource(const KubernetesSource&) = delete;
  KubernetesSource& operator=(const KubernetesSource&) = delete;

  // The static part merged under every published Model (see merge_model); may be called any time
  // before or after start(); republishes when started. Control thread.
  void set_base(routing::Model base);

  // Loads the credentials (options' lookup order), builds the TLS context and starts one list+watch
  // per resource (and namespace). Returns "" or a startup error naming the file/field (through
  // embed/sources.cpp, the proxy's start() returns it; the binary prints it and exits 1). The first Model
  // is published once every resource has listed once (or is absent), or after
  // options.initial_sync_timeout, flagged stale. Control thread.
  std::string start();

  // Stops every watch and pending rebuild; nothing is published afterwards. Control thread.
  void stop();

  // Current status (per resource and overall). Control thread.
  Status status() const;

 private:
  class Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sluice::discovery
