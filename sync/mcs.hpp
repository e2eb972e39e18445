// The optional MCS form of an import (multicluster.x-k8s.io/v1alpha1, KEP-1645): a ServiceImport
// without endpoints, and per exporting cluster an EndpointSlice labelled
// multicluster.kubernetes.io/service-name and /source-cluster holding that cluster's ready pod
// addresses (MCS assumes pods are reachable across clusters). Pure functions, like desired.hpp.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "sync/desired.hpp"

namespace sluice::sync {

inline constexpr const char* mcs_service_label = "multicluster.kubernetes.io/service-name";
inline constexpr const char* mcs_cluster_label = "multicluster.kubernetes.io/source-cluster";

// The MCS ServiceImport: spec.type, spec.ports (name, protocol, port), spec.sessionAffinity;
// status.clusters [{cluster}] by key order; labelled managed-by sluice-sync.
nlohmann::json mcs_import_object(const Merged& merged, const std::string& name_space, const std::string& name);

// The name of the slice that carries `cluster`'s endpoints of service `name`.
std::string mcs_slice_name(const std::string& name, const std::string& cluster);

// The slice of `cluster`'s endpoints for service ns/name, from that cluster's own EndpointSlices of
// the service (`local_slices`, label kubernetes.io/service-name): ready endpoints (absent
// conditions mean ready), addresses deduplicated and sorted; ports those of the local slices whose
// name is a port of `merged` (what the cluster contributes). addressType of the first slice.
nlohmann::json mcs_slice_object(const Merged& merged, const std::string& name_space, const std::string& name,
                                const std::string& cluster, const std::vector<const nlohmann::json*>& local_slices);

// True when `existing` carries managed-by sluice-sync, every label of `desired`, and the same values
// for `fields` (top-level keys) and, when `desired` has one, status.clusters.
bool managed_matches(const nlohmann::json& existing, const nlohmann::json& desired,
                     const std::vector<std::string>& fields);

}  // namespace sluice::sync
