// Retry decisions: which failed attempts may be tried again, and the retry budget that keeps retries from
// amplifying an outage (Envoy retry_budget: budget_percent 20% of active requests, min_retry_concurrency 3).
#pragma once

#include <cstdint>
#include <string_view>

#include "routing/outcome.hpp"

namespace sluice::routing {

struct ServiceEntry;

// RFC 9110 9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE.
bool is_idempotent(std::string_view method);

// Whether the outcome is retriable for the method: a connect failure (the request was never sent) for
// any method; a reset before any response byte, or a 502/503/504 (when retry_on_5xx), for idempotent
// methods only. Timeouts are not retried (the request may be executing).
bool retriable(Outcome outcome, unsigned status, std::string_view method, bool retry_on_5xx);

// Retries in flight allowed for the service now: max(min_retry_concurrency, budget_percent of its
// active requests). With 40 active requests and 20%: 8; with 5: 3 (the minimum).
std::int64_t retry_budget(const ServiceEntry& svc);

// The whole decision: retriable, attempts left (`attempts_made` <= max_retries), and within the budget.
// Counts a refusal by budget in the service's stats. Any thread.
bool retry_allowed(const ServiceEntry& svc, Outcome outcome, unsigned status, std::string_view method,
                   unsigned attempts_made);

}  // namespace sluice::routing
