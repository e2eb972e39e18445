// The last-known-good copy of every watched object, by kind and "namespace/name".
// Objects leave only by a DELETED event or a relist that no longer has them.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "discovery/objects.hpp"

namespace sluice::discovery {

enum class EventType { added, modified, deleted };

// "Service", "EndpointSlice", ... for log lines and status.
std::string_view kind_name(Kind kind);

class ObjectStore {
 public:
  template <typename T>
  using Map = std::map<std::string, T>;  // key "namespace/name"

  // Applies one watch event. A malformed object is skipped: a new one is not stored, a modified one
  // keeps its previous valid version. Returns the error ("ServiceImport ns/name: field: problem")
  // or empty. Control thread.
  std::string apply(Kind kind, EventType type, const nlohmann::json& object);

  // Replaces every object of `kind` in `name_space` (empty: all namespaces) by `items` (a JSON array,
  // a list response's items). Malformed items are skipped as in apply(); returns their errors.
  std::vector<std::string> replace(Kind kind, const std::string& name_space, const nlohmann::json& items);

  std::size_t count(Kind kind) const;

  const Map<KService>& services() const { return services_; }
  const Map<KEndpointSlice>& endpoint_slices() const { return slices_; }
  const Map<KServiceImport>& service_imports() const { return imports_; }
  const Map<KServiceExport>& service_exports() const { return exports_; }
  const Map<KTrafficPolicy>& traffic_policies() const { return policies_; }
  const Map<KServiceImport>& mcs_service_imports() const { return mcs_imports_; }

 private:
  Map<KService> services_;
  Map<KEndpointSlice> slices_;
  Map<KServiceImport> imports_;
  Map<KServiceExport> exports_;
  Map<KTrafficPolicy> policies_;
  Map<KServiceImport> mcs_imports_;
};

}  // namespace sluice::discovery
