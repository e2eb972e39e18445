#include "routing/retry.hpp"

#include <algorithm>
#include <cmath>

#include "routing/snapshot.hpp"

namespace sluice::routing {

bool is_idempotent(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE";
}

bool retriable(Outcome outcome, unsigned status, std::string_view method, bool retry_on_5xx) {
  switch (outcome) {
    case Outcome::connect_failure: return true;
    case Outcome::reset: return is_idempotent(method);
    case Outcome::http_5xx:
      return retry_on_5xx && is_idempotent(method) && (status == 502 || status == 503 || status == 504);
    case Outcome::timeout:
    case Outcome::success:
    case Outcome::local_abort: return false;
  }
  return false;
}

std::int64_t retry_budget(const ServiceEntry& svc) {
  const auto active = svc.active_requests();
  const auto share = static_cast<std::int64_t>(
      std::floor(static_cast<double>(std::max<std::int64_t>(0, active)) * svc.retry.budget_percent / 100.0));
  return std::max<std::int64_t>(svc.retry.min_retry_concurrency, share);
}

bool retry_allowed(const ServiceEntry& svc, Outcome outcome, unsigned status, std::string_view method,
                   unsigned attempts_made) {
  if (!retriable(outcome, status, method, svc.retry.retry_on_5xx)) return false;
  if (attempts_made > svc.retry.max_retries) return false;
  if (svc.state->active_retries.load(std::memory_order_relaxed) >= retry_budget(svc)) {
    svc.state->budget_exhausted.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  return true;
}

}  // namespace sluice::routing
