// Endpoint selection for one request within a service: session stickiness, the tier draw (FailOver
// spill), the service's balancing policy, and the retry rules (avoid what was tried, steer away from a
// failing cluster, HAProxy's "fall back to the previous server when nothing else is left"), under the
// per-endpoint pending-request limit.
#pragma once

#include <cstdint>
#include <optional>

namespace sluice::routing {

struct ServiceEntry;
struct ServiceView;
class Rng;

struct SelectInput {
  std::optional<std::uint64_t> hash_key;     // hashing policy: the request's key hash
  std::optional<std::uint64_t> sticky_token;  // the sticky cookie's endpoint token
  const std::uint64_t* tried = nullptr;       // tokens of endpoints this request already used
  std::size_t tried_count = 0;
  int avoid_cluster = -1;                     // cluster index to steer away from (retry), -1: none
  std::int64_t now = 0;                       // Ticks: stall detection
};

struct Selection {
  int endpoint = -1;         // index in ServiceEntry::endpoints; -1: none
  bool overloaded = false;   // usable endpoints exist but all are at their pending limit
  bool sticky_hit = false;   // the sticky cookie's endpoint was honoured (no new cookie needed)
};

// Chooses an endpoint of `svc` using its up-to-date `view`. Worker thread (view and rng are its own).
Selection select_endpoint(const ServiceEntry& svc, ServiceView& view, const SelectInput& in, Rng& rng);

}  // namespace sluice::routing
