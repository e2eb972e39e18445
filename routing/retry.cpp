#include "routing/retry.hpp"

#include <algorithm>
#include <cmath>

#include "routing/picker.hpp"
#include "routing/snapshot.hpp"

namespace sluice::routing {

bool is_idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

RetryKind retry_kind(Outcome outcome, std::string_view method, bool replayable, const config::RetryPolicy& policy) {
  const bool again = replayable && is_idempotent(method);
  switch (outcome) {
    case Outcome::connect_failure: return RetryKind::local;
    case Outcome::reset:
    case Outcome::reset_reused: return again ? RetryKind::local : RetryKind::none;
    case Outcome::gateway_error: return again && policy.retry_on_5xx ? RetryKind::budgeted : RetryKind::none;
    case Outcome::timeout: return again && policy.retry_on_timeout ? RetryKind::budgeted : RetryKind::none;
    case Outcome::http_5xx:
    case Outcome::success:
    case Outcome::local_abort: return RetryKind::none;
  }
  return RetryKind::none;
}

std::int64_t retry_budget(const ServiceEntry& svc) {
  const auto active = svc.active_requests();
  const auto share = static_cast<std::int64_t>(
      std::floor(static_cast<double>(std::max<std::int64_t>(0, active)) * svc.retry.budget_percent / 100.0));
  return std::max<std::int64_t>(svc.retry.min_retry_concurrency, share);
}

bool retry_allowed(const ServiceEntry& svc, const EndpointEntry& failed, Outcome outcome, std::string_view method,
                   bool replayable, AttemptState& attempt, Ticks now) {
  switch (retry_kind(outcome, method, replayable, svc.retry)) {
    case RetryKind::none: return false;
    case RetryKind::local: {
      // Each endpoint at most once: once every endpoint had its attempt, nothing live is left to try. A
      // stale pooled connection proves nothing about its endpoint, so it allows one more.
      const std::size_t endpoints = svc.endpoints.size();
      const bool stale = outcome == Outcome::reset_reused;
      if (attempt.attempt >= endpoints && !(stale && attempt.local_retries <= endpoints)) return false;
      ++attempt.local_retries;
      attempt.next = RetryKind::local;
      return true;
    }
    case RetryKind::ejected_endpoint:
    case RetryKind::budgeted:
      if (attempt.budgeted_retries >= svc.retry.max_retries) return false;
      if (failed.state->ejected_until.load(std::memory_order_relaxed) > now) {
        ++attempt.budgeted_retries;
        attempt.next = RetryKind::ejected_endpoint;
        return true;
      }
      if (svc.state->active_retries.load(std::memory_order_relaxed) >= retry_budget(svc)) {
        svc.state->budget_exhausted.fetch_add(1, std::memory_order_relaxed);
        return false;
      }
      ++attempt.budgeted_retries;
      attempt.next = RetryKind::budgeted;
      return true;
  }
  return false;
}

}  // namespace sluice::routing
