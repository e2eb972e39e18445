// The Kubernetes objects discovery reads, reduced to the fields routing needs, and their validation.
// Field names and meanings: shared/reference/multicluster-resources.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/config.hpp"

namespace sluice::discovery {

// Which resource an object came from.
enum class Kind {
  service,             // v1 Service
  endpoint_slice,      // discovery.k8s.io/v1 EndpointSlice
  service_import,      // flomesh.io/v1alpha1 ServiceImport
  service_export,      // flomesh.io/v1alpha1 ServiceExport
  traffic_policy,      // flomesh.io/v1alpha1 GlobalTrafficPolicy
  mcs_service_import,  // multicluster.x-k8s.io/v1alpha1 ServiceImport
};
inline constexpr int kind_count = 6;

struct ObjectMeta {
  std::string name;
  std::string name_space;
  std::string resource_version;
};

struct ServicePort {
  std::string name;
  std::uint16_t port = 0;
  std::uint16_t target_port = 0;  // 0: a named target port (or none)
};

struct KService {
  ObjectMeta meta;
  std::vector<ServicePort> ports;
};

struct SliceEndpoint {
  std::string address;      // addresses[0]: the addresses of one endpoint are fungible
  bool ready = true;        // absent conditions mean ready (the API's contract)
  bool serving = true;
  bool terminating = false;
};

struct SlicePort {
  std::string name;
  std::uint16_t port = 0;
};

struct KEndpointSlice {
  ObjectMeta meta;
  std::string service_name;        // label kubernetes.io/service-name
  std::string mcs_service_name;    // label multicluster.kubernetes.io/service-name
  std::string mcs_source_cluster;  // label multicluster.kubernetes.io/source-cluster
  std::vector<SlicePort> ports;
  std::vector<SliceEndpoint> endpoints;
};

struct ImportTarget {
  std::string cluster_key;
  std::string address;  // target.ip, else target.host
  std::uint16_t port = 0;
  std::string path;
};

struct ImportPort {
  std::string name;
  std::uint16_t port = 0;
  std::vector<ImportTarget> endpoints;
};

struct KServiceImport {  // flomesh.io and (without endpoints) multicluster.x-k8s.io
  ObjectMeta meta;
  std::vector<ImportPort> ports;
};

struct ExportRule {
  std::uint16_t port_number = 0;
  std::string path = "/";
  config::PathMatch path_match = config::PathMatch::prefix;  // pathType Prefix (the default) | Exact
};

struct KServiceExport {
  ObjectMeta meta;
  std::optional<std::string> rewrite_from;  // pathRewrite.from with a leading '^' removed
  std::string rewrite_to;
  bool session_sticky = false;
  // loadBalancer: RoundRobinLoadBalancer | HashingLoadBalancer | LeastWorkLoadBalancer; nullopt: not set
  std::optional<config::LoadBalancer> load_balancer;
  std::vector<ExportRule> rules;
};

struct PolicyTargetRef {
  std::string cluster_key;
  std::optional<std::uint32_t> weight;
};

struct KTrafficPolicy {
  ObjectMeta meta;
  config::LbType lb_type = config::LbType::locality;  // lbType: Locality (the default) | ActiveActive | FailOver
  std::vector<PolicyTargetRef> targets;
};

// Each parser returns nullopt and sets `error` to "<field>: <problem>" for a malformed object.
// Unknown fields are ignored (the API evolves). Any thread.
std::optional<ObjectMeta> parse_meta(const nlohmann::json& object, std::string& error);
std::optional<KService> parse_service(const nlohmann::json& object, std::string& error);
std::optional<KEndpointSlice> parse_endpoint_slice(const nlohmann::json& object, std::string& error);
std::optional<KServiceImport> parse_service_import(const nlohmann::json& object, std::string& error);
std::optional<KServiceExport> parse_service_export(const nlohmann::json& object, std::string& error);
std::optional<KTrafficPolicy> parse_traffic_policy(const nlohmann::json& object, std::string& error);

}  // namespace sluice::discovery
