// Options of the Kubernetes discovery source (filled by embed/sources.cpp from config::Kubernetes and the
// listeners, through kube_options_from).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::discovery {

// Reads an environment variable; empty when unset. A seam so tests need not touch the real environment.
using EnvLookup = std::function<std::string(const char* name)>;

// The standard service-account mount of a pod.
inline constexpr const char* default_in_cluster_dir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct KubeOptions {
  std::string kubeconfig;                 // explicit path (config kubernetes.kubeconfig); wins over everything
  std::string context;                    // kubeconfig context; empty: current-context
  std::vector<std::string> namespaces;    // empty: cluster-wide watches; else one watch per namespace
  std::chrono::milliseconds coalesce{50};  // a burst of events becomes one rebuild after this window

  // Which routes the translation emits: sidecar listeners get host-name routes for every service,
  // gateway listeners get the ServiceExport rules. Empty lists: no routes of that kind.
  std::vector<std::string> sidecar_listeners;
  std::vector<std::string> gateway_listeners;

  EnvLookup env;                          // empty: std::getenv
  std::string in_cluster_dir = default_in_cluster_dir;

  // Server-side watch timeout; each watch asks for this plus up to `watch_timeout_jitter` at random,
  // so that watches of many proxies do not reconnect in lockstep (client-go uses 5..10 min).
  std::chrono::seconds watch_timeout{300};
  std::chrono::seconds watch_timeout_jitter{60};
  std::size_t list_page_size = 500;       // list pagination `limit`, as client-go's pager
  // A resource whose endpoint answers 404 (CRD not installed) is retried this slowly.
  std::chrono::seconds absent_retry{30};
  // The first Model is published when every resource has listed once, or after this long (stale).
  std::chrono::milliseconds initial_sync_timeout{10000};
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds request_timeout{30};  // a list page, or silence on a watch beyond its timeout
};

}  // namespace sluice::discovery
