#include "discovery/object_store.hpp"

#include <nlohmann/json.hpp>

namespace sluice::discovery {
namespace {

using nlohmann::json;

std::string key_of(const ObjectMeta& meta) { return meta.name_space + "/" + meta.name; }

// Best-effort name of a (possibly malformed) object for a log line.
std::string describe(Kind kind, const json& object) {
  std::string name = "<unnamed>";
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object()) {
    const json& m = object["metadata"];
    std::string ns = m.contains("namespace") && m["namespace"].is_string() ? m["namespace"].get<std::string>() : "";
    std::string n = m.contains("name") && m["name"].is_string() ? m["name"].get<std::string>() : "<unnamed>";
    name = ns.empty() ? n : ns + "/" + n;
  }
  return std::string(kind_name(kind)) + " " + name;
}

template <typename T, typename Parse>
std::string apply_to(ObjectStore::Map<T>& map, Kind kind, EventType type, const json& object, Parse parse) {
  std::string error;
  if (type == EventType::deleted) {
    // A delete needs only the name; the rest of the final state may be anything.
    auto meta = parse_meta(object, error);
    if (!meta) return describe(kind, object) + ": " + error;
    map.erase(key_of(*meta));
    return {};
  }
  auto parsed = parse(object, error);
  if (!parsed) {
    bool kept = false;
    if (auto meta = parse_meta(object, error); meta) kept = map.count(key_of(*meta)) > 0;
    return describe(kind, object) + ": " + error + (kept ? " (keeping its previous version)" : " (skipped)");
  }
  map[key_of(parsed->meta)] = std::move(*parsed);
  return {};
}

template <typename T, typename Parse>
std::vector<std::string> replace_in(ObjectStore::Map<T>& map, Kind kind, const std::string& name_space,
                                    const json& items, Parse parse) {
  std::vector<std::string> errors;
  ObjectStore::Map<T> fresh;
  for (const json& item : items) {
    std::string error;
    if (auto parsed = parse(item, error)) {
      fresh[key_of(parsed->meta)] = std::move(*parsed);
      continue;
    }
    std::string ignored;
    auto meta = parse_meta(item, ignored);
    auto old = meta ? map.find(key_of(*meta)) : map.end();
    bool kept = old != map.end();
    if (kept) fresh[old->first] = old->second;
    errors.push_back(describe(kind, item) + ": " + error + (kept ? " (keeping its previous version)" : " (skipped)"));
  }
  for (auto it = map.begin(); it != map.end();) {
    if (name_space.empty() || it->second.meta.name_space == name_space) it = map.erase(it);
    else ++it;
  }
  map.merge(fresh);
  return errors;
}

}  // namespace

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::service: return "Service";
    case Kind::endpoint_slice: return "EndpointSlice";
    case Kind::service_import: return "ServiceImport";
    case Kind::service_export: return "ServiceExport";
    case Kind::traffic_policy: return "GlobalTrafficPolicy";
    case Kind::mcs_service_import: return "ServiceImport.multicluster.x-k8s.io";
  }
  return "?";
}

std::string ObjectStore::apply(Kind kind, EventType type, const json& object) {
  switch (kind) {
    case Kind::service: return apply_to(services_, kind, type, object, parse_service);
    case Kind::endpoint_slice: return apply_to(slices_, kind, type, object, parse_endpoint_slice);
    case Kind::service_import: return apply_to(imports_, kind, type, object, parse_service_import);
    case Kind::service_export: return apply_to(exports_, kind, type, object, parse_service_export);
    case Kind::traffic_policy: return apply_to(policies_, kind, type, object, parse_traffic_policy);
    case Kind::mcs_service_import: return apply_to(mcs_imports_, kind, type, object, parse_service_import);
  }
  return {};
}

std::vector<std::string> ObjectStore::replace(Kind kind, const std::string& ns, const json& items) {
  switch (kind) {
    case Kind::service: return replace_in(services_, kind, ns, items, parse_service);
    case Kind::endpoint_slice: return replace_in(slices_, kind, ns, items, parse_endpoint_slice);
    case Kind::service_import: return replace_in(imports_, kind, ns, items, parse_service_import);
    case Kind::service_export: return replace_in(exports_, kind, ns, items, parse_service_export);
    case Kind::traffic_policy: return replace_in(policies_, kind, ns, items, parse_traffic_policy);
    case Kind::mcs_service_import: return replace_in(mcs_imports_, kind, ns, items, parse_service_import);
  }
  return {};
}

std::size_t ObjectStore::count(Kind kind) const {
  switch (kind) {
    case Kind::service: return services_.size();
    case Kind::endpoint_slice: return slices_.size();
    case Kind::service_import: return imports_.size();
    case Kind::service_export: return exports_.size();
    case Kind::traffic_policy: return policies_.size();
    case Kind::mcs_service_import: return mcs_imports_.size();
  }
  return 0;
}

}  // namespace sluice::discovery
