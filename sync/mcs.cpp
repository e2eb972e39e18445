#include "sync/mcs.hpp"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

namespace sluice::sync {
namespace {

using nlohmann::json;

const json& at(const json& o, const char* key) {
  static const json null;
  if (!o.is_object()) return null;
  auto it = o.find(key);
  return it == o.end() ? null : *it;
}

}  // namespace

json mcs_import_object(const Merged& merged, const std::string& ns, const std::string& name) {
  json ports = json::array();
  for (const ImportPort& p : merged.ports) {
    json port = {{"protocol", p.protocol}, {"port", p.port}};
    if (!p.name.empty()) port["name"] = p.name;
    ports.push_back(std::move(port));
  }
  json clusters = json::array();
  for (const ClusterStatus& c : merged.clusters) clusters.push_back({{"cluster", c.cluster}});
  return {
      {"apiVersion", "multicluster.x-k8s.io/v1alpha1"},
      {"kind", "ServiceImport"},
      {"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{managed_by_label, managed_by_value}}}}},
      {"spec", {{"type", merged.type}, {"sessionAffinity", merged.session_affinity}, {"ports", std::move(ports)}}},
      {"status", {{"clusters", std::move(clusters)}}},
  };
}

std::string mcs_slice_name(const std::string& name, const std::string& cluster) { return name + "-" + cluster; }

json mcs_slice_object(const Merged& merged, const std::string& ns, const std::string& name, const std::string& cluster,
                      const std::vector<const json*>& local_slices) {
  std::set<std::string> names;
  for (const ImportPort& p : merged.ports) names.insert(p.name);
  std::string address_type = "IPv4";
  json ports = json::array();
  std::set<std::string> port_seen;
  std::set<std::string> addresses;
  bool first = true;
  for (const json* s : local_slices) {
    if (!s) continue;
    if (first && at(*s, "addressType").is_string()) address_type = at(*s, "addressType").get<std::string>();
    first = false;
    if (at(*s, "ports").is_array())
      for (const json& p : at(*s, "ports")) {
        const std::string pname = at(p, "name").is_string() ? at(p, "name").get<std::string>() : "";
        if (!names.count(pname) || !port_seen.insert(pname).second) continue;
        ports.push_back(p);
      }
    if (at(*s, "endpoints").is_array())
      for (const json& e : at(*s, "endpoints")) {
        const json& ready = at(at(e, "conditions"), "ready");
        if (ready.is_boolean() && !ready.get<bool>()) continue;
        const json& addrs = at(e, "addresses");
        if (addrs.is_array() && !addrs.empty() && addrs[0].is_string()) addresses.insert(addrs[0].get<std::string>());
      }
  }
  std::sort(ports.begin(), ports.end(), [](const json& a, const json& b) { return a.dump() < b.dump(); });
  json endpoints = json::array();
  for (const auto& a : addresses)
    endpoints.push_back({{"addresses", json::array({a})}, {"conditions", {{"ready", true}}}});
  return {
      {"apiVersion", "discovery.k8s.io/v1"},
      {"kind", "EndpointSlice"},
      {"metadata", {{"name", mcs_slice_name(name, cluster)},
                    {"namespace", ns},
                    {"labels", {{managed_by_label, managed_by_value},
                                {mcs_service_label, name},
                                {mcs_cluster_label, cluster},
                                {"endpointslice.kubernetes.io/managed-by", "sluice-sync"}}}}},
      {"addressType", address_type},
      {"ports", std::move(ports)},
      {"endpoints", std::move(endpoints)},
  };
}

bool managed_matches(const json& existing, const json& desired, const std::vector<std::string>& fields) {
  if (!is_managed(existing)) return false;
  const json& want = at(at(desired, "metadata"), "labels");
  const json& have = at(at(existing, "metadata"), "labels");
  if (want.is_object())
    for (auto it = want.begin(); it != want.end(); ++it)
      if (!have.is_object() || !have.contains(it.key()) || have[it.key()] != it.value()) return false;
  for (const auto& f : fields)
    if (at(existing, f.c_str()) != at(desired, f.c_str())) return false;
  if (desired.contains("status")) {
    const json& a = at(at(existing, "status"), "clusters");
    const json& b = at(at(desired, "status"), "clusters");
    if ((a.is_null() ? json::array() : a) != (b.is_null() ? json::array() : b)) return false;
  }
  return true;
}

}  // namespace sluice::sync
