// The worker-facing side of routing: match a request to a route and pick an endpoint, then report how the
// attempt went.
//
// One Picker per worker thread (it owns that worker's balancer state and a Reader of the table). Nothing
// here blocks or takes a mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/container/small_vector.hpp>

#include "routing/clock.hpp"
#include "routing/hash.hpp"
#include "routing/outcome.hpp"
#include "routing/table.hpp"

namespace sluice::routing {

struct Snapshot;
struct ServiceEntry;
struct RouteEntry;
struct EndpointEntry;
class BalancerState;
class LoadBalancingPolicy;

// What routing needs to know about a request. Views are valid for the call only.
struct RequestView {
  std::string_view listener;        // listener name
  std::string_view host;            // Host header or authority, possibly with ":port"
  std::string_view target;          // origin-form request target (path and query)
  std::string_view method;
  std::string_view client_address;  // downstream peer IP, for hashing and X-Forwarded-For
  // Header lookup by (case-insensitive) name; "" when absent. Used for hashing and the sticky cookie
  // ("cookie"). May be empty (no headers available).
  std::function<std::string_view(std::string_view)> header;
};

// Per-request state across attempts (retries). Create one per request; pick() updates it.
struct AttemptState {
  unsigned attempt = 0;        // picks made so far (pick() increments it): 0 before the first
  unsigned budgeted_retries = 0;  // retries granted after 5xx or timeouts (at most max_retries)
  unsigned local_retries = 0;     // retries granted after local-origin failures
  RetryKind next = RetryKind::none;  // the grant the next pick uses (may_retry sets it, pick consumes it)
  // Tokens of the endpoints already used by this request (valid across snapshot changes). Inline for the
  // usual few attempts: a request costs no allocation here.
  boost::container::small_vector<std::uint64_t, 4> tried_tokens;
  std::uint64_t last_cluster = 0;  // hash64 of the last attempt's cluster key; 0: none yet
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
  std::string_view service_id;  // "name.namespace" (in `snapshot`), set once a route matched
  std::string_view cluster;     // cluster key of the endpoint (in `snapshot`)
  bool remote = false;          // the endpoint is another cluster's gateway
  unsigned tier = 0;            // FailOver priority level (0 = local)
  bool retry = false;           // this attempt is a budgeted retry (counts against the retry budget until finish)
  std::string set_cookie;       // non-empty: a Set-Cookie value to add to the response (session stickiness)
  std::string reason;           // short human text for no_route/no_endpoint/overloaded bodies and /explain
  // Set only for services with a load-balancing plugin: the instance that picked (told the outcome by
  // finish()) and when.
  std::shared_ptr<LoadBalancingPolicy> lb_policy;
  Clock::time_point picked_at{};
};

class Picker {
 public:
  // `table` must outlive the picker. One picker per worker thread. `seed` seeds the worker's random source
  // (0: a seed from std::random_device); tests pass a fixed seed.
  explicit Picker(const Table& table, std::uint64_t seed = 0);
  ~Picker();
  Picker(const Picker&) = delete;
  Picker& operator=(const Picker&) = delete;

  // Matches `req` to a route and picks an endpoint, skipping those in `attempt.tried_tokens` when any other is
  // usable (and, on a retry after a remote cluster or a failing tier, that cluster too). On ok the
  // endpoint's active-request count is raised, `attempt` records the pick (attempt += 1, tried_tokens,
  // last_cluster, last_was_remote), and the caller must call finish() exactly once for the result.
  // overloaded: every usable endpoint is at its pending-request limit. Worker thread only.
  PickResult pick(const RequestView& req, AttemptState& attempt, Clock::time_point now = Clock::now());

  // pick() into an existing result, reusing its strings' storage (no allocation on the hot path once
  // warm). `out` must not hold an unfinished ok pick.
  void pick_into(const RequestView& req, AttemptState& attempt, PickResult& out,
                 Clock::time_point now = Clock::now());

  // Records how the attempt went (outlier detection, active requests, retry budget). Call once per ok
  // pick; ignores non-ok results. Any thread (normally the worker's); the worker's own when the service has a
  // load-balancing plugin (its instance is told the outcome here).
  void finish(const PickResult& picked, Outcome outcome, Clock::time_point now = Clock::now());

  // Whether a failed attempt may be retried, and of which kind (routing/retry.hpp): after a local-origin
  // failure (connect_failure; reset or reset_reused when `replayable` and the method is idempotent)
  // without the budget; after gateway_error or timeout (idempotent, replayable) within max_retries and
  // the retry budget. On yes the grant is recorded in `attempt` for the next pick(). Before or after
  // finish() of the failed attempt.
  // A failure of an endpoint outlier detection has taken out (by `now`) holds no budget.
  bool may_retry(const PickResult& picked, Outcome outcome, std::string_view method, bool replayable,
                 AttemptState& attempt, Clock::time_point now = Clock::now()) const;

  // The endpoint of `picked` sent a response head: a sign of life (stall detection). Worker thread.
  void responding(const PickResult& picked, Clock::time_point now = Clock::now()) const;

  // The snapshot this picker currently reads.
  const std::shared_ptr<const Snapshot>& snapshot() { return reader_.current_ptr(); }

 private:
  Reader reader_;
  std::unique_ptr<BalancerState> state_;  // per-worker balancer state, rebuilt when the snapshot changes
};

}  // namespace sluice::routing
