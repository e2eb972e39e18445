// Retry decisions: which failed attempts may be tried again, and the retry budget that keeps retries of
// requests an application has seen from amplifying an outage (Envoy retry_budget: budget_percent 20% of
// active requests, min_retry_concurrency 3).
//
// Two kinds of retry (routing/README.md, "Retries"):
// - local: after a local-origin failure (connect failure; a reset before any response byte). No
//   application saw the request, so the budget does not apply and max_retries does not count it; what
//   bounds it is the endpoints left to try (each at most once) and the request's deadline (the proxy's).
// - budgeted: after a 502/503/504 or a response timeout, for idempotent methods whose body the proxy
//   still holds; at most max_retries per request, within the budget. The budget bounds retries against
//   a service in trouble as a whole; when the endpoint that failed is out of rotation (this failure or
//   an earlier one ejected it), the failure is that endpoint's and the retry holds no budget.
#pragma once

#include <cstdint>
#include <string_view>

#include "config/config.hpp"
#include "routing/clock.hpp"
#include "routing/outcome.hpp"

namespace sluice::routing {

struct ServiceEntry;
struct EndpointEntry;
struct AttemptState;

// RFC 9110 9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
bool is_idempotent(std::string_view method);

// The kind of retry the outcome calls for. `replayable`: the proxy still holds the whole request body
// and has not streamed any of it (a connect failure sent nothing, so it is always replayable).
RetryKind retry_kind(Outcome outcome, std::string_view method, bool replayable, const config::RetryPolicy& policy);

// Budgeted retries in flight allowed for the service now: max(min_retry_concurrency, budget_percent of
// its active requests). With 40 active requests and 20%: 8; with 5: 3 (the minimum).
std::int64_t retry_budget(const ServiceEntry& svc);

// The whole decision for the request's next attempt; on yes, records the grant in `attempt` (the next
// pick is a retry of that kind). Counts a refusal by the budget in the service's stats. Any thread.
// `failed`: the endpoint the failed attempt used; `now` for its ejection state.
bool retry_allowed(const ServiceEntry& svc, const EndpointEntry& failed, Outcome outcome, std::string_view method,
                   bool replayable, AttemptState& attempt, Ticks now);

}  // namespace sluice::routing
