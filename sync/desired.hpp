// The desired state of one multi-cluster service (namespace/name), computed from every member's
// ServiceExport and Service by KEP-1645's rules. Pure functions: no I/O, no clock; the controller
// feeds them its caches and writes what they return.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sluice::sync {

// The managed-by label on everything sync writes; objects without it are never changed.
inline constexpr const char* managed_by_label = "app.kubernetes.io/managed-by";
inline constexpr const char* managed_by_value = "sluice-sync";

struct Gateway {
  std::string host;  // as configured
  std::string ip;    // host resolved at the last resync (host itself when it is an IP literal)
  std::uint16_t port = 0;
};

struct ExportedPort {
  std::string name;
  std::string protocol = "TCP";
  std::uint16_t port = 0;
  std::string path = "/";  // the export rule's path for this port: the gateway serves it there
};

// One member's export of the service, with what its Service says. Built by export_input().
struct ExportInput {
  std::string cluster_key;
  std::string cluster_name;
  std::int64_t created = 0;   // the ServiceExport's creationTimestamp, seconds since the epoch
  std::string created_text;   // as written, for messages
  // Empty when valid; else the Valid condition's reason (NoService, InvalidServiceType,
  // InvalidPort) and message.
  std::string invalid_reason;
  std::string invalid_message;
  std::string type = "ClusterSetIP";  // ClusterSetIP, or Headless when the Service's clusterIP is None
  std::string session_affinity = "None";
  std::string service_account_name = "*";
  std::vector<ExportedPort> ports;
  Gateway gateway;
};

// Builds the input from a member's ServiceExport (flomesh.io) and Service (nullptr when absent)
// objects as JSON. Each export rule's portNumber names a Service port (name and protocol come from
// it); the first rule for a port gives its path. Never throws on malformed objects: they are
// invalid inputs.
ExportInput export_input(const std::string& cluster_key, const std::string& cluster_name, const Gateway& gateway,
                         const nlohmann::json& service_export, const nlohmann::json* service);

struct ImportTarget {
  std::string host;
  std::string ip;
  std::uint16_t port = 0;
  std::string path;
  bool operator==(const ImportTarget&) const = default;
};

struct ImportEndpoint {
  std::string cluster_key;
  ImportTarget target;
  bool operator==(const ImportEndpoint&) const = default;
};

struct ImportPort {
  std::string name;
  std::string protocol;
  std::uint16_t port = 0;
  std::vector<ImportEndpoint> endpoints;  // sorted by cluster key
};

struct ClusterStatus {
  std::string cluster;                 // the member's name
  std::vector<std::string> addresses;  // "http://ip:port/path" per contributed port
};

// The merged import over every constituent export (the importing cluster not yet left out).
struct Merged {
  std::string type;
  std::string session_affinity;
  std::string service_account_name;
  std::vector<ImportPort> ports;        // the oldest export's ports first, then later additions
  std::vector<ClusterStatus> clusters;  // sorted by cluster key
};

// What the constituent export of `cluster_key` is told in its status.
struct ExportVerdict {
  std::string cluster_key;
  bool valid = true;
  std::string valid_reason;   // "Valid" or the input's invalid reason
  std::string valid_message;
  bool conflict = false;
  std::string conflict_reason;   // NoConflicts | TypeConflict | PortConflict
  std::string conflict_message;  // names the oldest export's cluster when there is a conflict
};

struct Resolution {
  std::optional<Merged> merged;        // nullopt: no valid export, no import should exist
  std::vector<ExportVerdict> verdicts;  // one per input, in the inputs' order
};

// KEP-1645: valid exports ordered by creation time, then cluster key; the oldest sets the type and
// its ports; each later export joins with the ports that agree (same name and protocol+port, or a
// new name on a new protocol+port) and is left out where it conflicts: wholly on a type conflict,
// per port on a port conflict. Endpoints per port sorted by cluster key. Deterministic: the result
// does not depend on the inputs' order.
Resolution resolve(const std::vector<ExportInput>& inputs);

// The flomesh.io ServiceImport object for the member `importing_key` (its own endpoints left out),
// labelled managed-by sluice-sync. status.clusters lists every contributing cluster.
nlohmann::json import_object(const Merged& merged, const std::string& name_space, const std::string& name,
                             const std::string& importing_key);

// While a member has not listed since start (its exports unknown, within the TTL), the endpoints
// it had in `existing` (a managed import as read) are carried into `desired` (nullptr: no other
// export) so that a sync restart during a member's outage does not drop them: per port name with
// the same protocol+port (a port `desired` lacks is added as it was), sorted by cluster key, and
// their status.clusters entries. `unknown` maps those members' cluster keys to their names. Returns
// the object to write, or null JSON when there is nothing to hold.
nlohmann::json carry_over(const nlohmann::json& existing, const nlohmann::json* desired,
                          const std::map<std::string, std::string>& unknown,
                          const std::map<std::string, std::string>& names_to_keys);

// True when `existing` (an object read from the API) already says what `desired` says: same spec,
// same status.clusters, and the managed-by label. Server-set metadata is ignored.
bool import_matches(const nlohmann::json& existing, const nlohmann::json& desired);

// True when `object` carries managed-by: sluice-sync.
bool is_managed(const nlohmann::json& object);

// The status.conditions a ServiceExport should carry for `verdict`: Valid, and Conflict when valid;
// `current`'s conditions of other types are kept (other controllers' business).
// lastTransitionTime is kept from `current` (its present conditions) when a condition's status did
// not change, else `now` (RFC 3339).
nlohmann::json export_conditions(const ExportVerdict& verdict, const nlohmann::json& current, const std::string& now);

// True when the conditions differ other than by lastTransitionTime.
bool conditions_differ(const nlohmann::json& current, const nlohmann::json& desired);

// "2026-12-02T07:00:00Z" (fractions and offsets accepted) -> seconds since the epoch; nullopt when malformed.
std::optional<std::int64_t> parse_timestamp(const std::string& text);

}  // namespace sluice::sync
