// The worker-facing side of routing: match a request to a route and pick an
// endpoint, then report how the attempt went.
//
// One Picker per worker thread (it owns that worker's balancer state and a
// Reader of the table). Nothing here blocks or takes a mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "routing/table.hpp"

namespace sluice::routing {

struct Snapshot;
struct ServiceEntry;
struct RouteEntry;
struct EndpointEntry;
class BalancerState;

using Clock = std::chrono::steady_clock;

// What routing needs to know about a request. Views are valid for the call only.
struct RequestView {
  std::string_view listener;        // listener name
  std::string_view host;            // Host header or authority, possibly with ":port"
  std::string_view target;          // origin-form request target (path and query)
  std::string_view method;
  std::string_view client_address;  // downstream peer IP, for hashing and X-Forwarded-For
  // Header lookup by (case-insensitive) name; "" when absent. Used for hashing and the sticky cookie.
  std::function<std::string_view(std::string_view)> header;
};

// Per-request state across attempts (retries).
struct AttemptState {
  unsigned attempt = 0;                          // 0 for the first try
  std::vector<const EndpointEntry*> tried;       // endpoints already used by this request
  std::string last_cluster;                      // cluster key of the last attempt
  bool last_was_remote = false;
};

enum class PickStatus { ok, no_route, no_endpoint, overloaded };

struct PickResult {
  PickStatus status = PickStatus::no_route;
  std::shared_ptr<const Snapshot> snapshot;  // keeps the pointers below alive
  const RouteEntry* route = nullptr;
  const ServiceEntry* service = nullptr;
  const EndpointEntry* endpoint = nullptr;

  // Filled when status == ok.
  std::string address;        // endpoint host or IP
  std::uint16_t port = 0;
  std::string upstream_target;  // request target to send: path rewrite and cluster path prefix applied
  std::string host_header;      // Host to send upstream (the route's rewrite, or the original)
  std::string service_id;       // "name.namespace"
  std::string cluster;          // cluster key of the endpoint
  bool remote = false;          // the endpoint is another cluster's gateway
  unsigned tier = 0;            // FailOver priority level (0 = local)
  std::string set_cookie;       // non-empty: a Set-Cookie value to add to the response (session stickiness)
  std::string reason;           // short human text for no_route/no_endpoint bodies and /explain
};

enum class Outcome {
  success,          // any response that is not a failure below
  http_5xx,         // 5xx from the endpoint (counts towards outlier ejection)
  connect_failure,  // request never sent
  reset,            // connection lost before any response byte
  timeout,          // no response within the response timeout
  local_abort,      // downstream went away; not the endpoint's fault
};

class Picker {
 public:
  // `table` must outlive the picker. One picker per worker thread.
  explicit Picker(const Table& table);
  ~Picker();
  Picker(const Picker&) = delete;
  Picker& operator=(const Picker&) = delete;

  // Matches `req` to a route and picks an endpoint, skipping those in `attempt.tried` when any other is
  // usable. On ok the endpoint's active-request count is raised; the caller must call finish() exactly once
  // for every ok result. Worker thread only.
  PickResult pick(const RequestView& req, AttemptState& attempt, Clock::time_point now = Clock::now());

  // Records how the attempt went (outlier detection, active requests, retry budget). Worker thread only.
  void finish(const PickResult& picked, Outcome outcome, Clock::time_point now = Clock::now());

  // Whether a failed attempt may be retried: the service's retry count, the method's idempotence,
  // the outcome kind (connect_failure for any method; reset, timeout? no; http_5xx 502/503/504 and reset
  // only for idempotent methods) and the retry budget. `status` is the HTTP status for http_5xx.
  bool may_retry(const PickResult& picked, Outcome outcome, unsigned status, std::string_view method,
                 const AttemptState& attempt) const;

  // The snapshot this picker currently reads.
  const std::shared_ptr<const Snapshot>& snapshot() { return reader_.current_ptr(); }

 private:
  Reader reader_;
  std::unique_ptr<BalancerState> state_;  // per-worker balancer state, rebuilt when the snapshot changes
};

}  // namespace sluice::routing
