// The configuration of `sluice sync`: its member clusters and its timings, from a JSON file.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::sync {

struct MemberConfig {
  std::string name;               // the cluster's name ("cluster-1")
  std::string region = "default";  // key parts, each "default" when absent (flomesh.io Cluster's defaults)
  std::string zone = "default";
  std::string group = "default";
  std::string kubeconfig;         // path; empty: in-cluster, $KUBECONFIG, ~/.kube/config (discovery's order)
  std::string context;            // kubeconfig context; empty: current-context
  std::string gateway_host;       // where other clusters reach this cluster's gateway (name or IP)
  std::uint16_t gateway_port = 80;  // flomesh.io Cluster's gatewayPort default

  // "region/zone/group/name", the clusterKey of imports and policies.
  std::string key() const { return region + "/" + zone + "/" + group + "/" + name; }
};

// Leader election (leader.hpp): a coordination.k8s.io/v1 Lease in a home cluster. Timings are
// client-go's defaults (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s).
struct LeaderElection {
  std::string kubeconfig;  // the home cluster; empty: the first member's kubeconfig and context
  std::string context;
  std::string name_space = "default";
  std::string name = "sluice-sync";
  std::string identity;    // empty: "<hostname>_<pid>"
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
};

struct Config {
  std::vector<MemberConfig> members;
  // Every key is recomputed and written this often, whatever the events said (and gateway names are
  // re-resolved then).
  std::chrono::milliseconds resync_interval{30000};
  // A member that cannot be reached keeps its last-known exports in other members' imports this long
  // (a control-plane outage is not a data-plane outage); then they are dropped until it is back.
  std::chrono::milliseconds member_ttl{300000};
  // At start, writes wait for every member's first list this long at most (discovery's default);
  // then they go on, members still unlisted being "unknown": their endpoints in the imports that
  // exist are kept (carried over) until member_ttl after start.
  std::chrono::milliseconds initial_sync_timeout{10000};
  // Events are gathered this long before a reconcile runs, so a burst is one pass.
  std::chrono::milliseconds coalesce{100};
  std::optional<std::uint16_t> admin_port;  // the admin endpoint on 127.0.0.1 (/ready, /live, /stats)
  std::string admin_address = "127.0.0.1";
  std::string log_level = "info";
  std::optional<LeaderElection> leader_election;  // absent: this process always writes
  // Also write the MCS form (multicluster.x-k8s.io ServiceImports and EndpointSlices with the
  // exporters' pod addresses: a flat network), beside the flomesh.io imports.
  bool mcs = false;
};

// Parses the JSON text of a sync config. Errors are "json.path: problem" (unknown keys, types, ranges,
// duplicate member names or keys, a member without gateway). nullopt when there is any. Any thread.
std::optional<Config> parse_config(std::string_view text, std::vector<std::string>& errors);

// Reads and parses `path`; errors are prefixed "PATH: ".
std::optional<Config> load_config(const std::string& path, std::vector<std::string>& errors);

}  // namespace sluice::sync
