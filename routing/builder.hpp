// Model -> immutable Snapshot (builder.cpp). Private to libsluice: the model is public (model.hpp), the
// snapshot and the endpoint registry are not.
#pragma once

#include <chrono>
#include <memory>

#include "routing/model.hpp"
#include "routing/registry.hpp"

namespace sluice::routing {

struct Snapshot;

// Builds a snapshot. Per-endpoint state (active requests, failures, ejection) is taken from `registry`,
// keyed by endpoint identity (service, cluster, address, port), so it survives rebuilds. Control thread.
std::shared_ptr<Snapshot> build_snapshot(const Model& model, EndpointRegistry& registry,
                                         std::chrono::steady_clock::time_point now);

}  // namespace sluice::routing
