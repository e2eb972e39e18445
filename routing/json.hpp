// JSON views of routing for the admin endpoint: the whole snapshot with live endpoint state, and the
// explanation of one request's routing decision. Control thread (admin); reads atomics only and
// changes nothing except lifting ejections whose time is up (as a pick would).
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "routing/clock.hpp"

namespace sluice::routing {

struct Snapshot;
struct RequestView;

// {generation, source, stale, local_cluster, services: [{id, policy, load_balancer, tiers: [{tier,
// load, health, panic, clusters: [{key, state, endpoints: [{address, port, weight, healthy, ejected,
// ejected_for_ms, ejections, active, consecutive_failures, health_check, slow_start}]}]}]}], routes: [...]}
nlohmann::json snapshot_to_json(const Snapshot& snap, Clock::time_point now = Clock::now());

// {route: {...} | null, service, tiers (as above with the candidates and their effective weights),
//  reason} for the request; nothing is picked and no counter changes.
nlohmann::json explain(const Snapshot& snap, const RequestView& req, Clock::time_point now = Clock::now());

}  // namespace sluice::routing
