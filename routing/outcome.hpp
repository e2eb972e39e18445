// How one attempt to an endpoint went, as the proxy reports it to routing.
#pragma once

namespace sluice::routing {

enum class Outcome {
  success,          // any response that is not a failure below
  http_5xx,         // a 5xx other than 502/503/504 from the endpoint
  gateway_error,    // 502, 503 or 504 from the endpoint
  timeout,          // no response within the response timeout
  connect_failure,  // refused, unreachable, connect or TLS handshake timeout: the request was never sent
  reset,            // a fresh connection lost before any response byte (or an upstream cut mid-response)
  // A connection reused from the pool lost before any response byte: most likely closed by the endpoint
  // while idle (the keep-alive race). Retried like a reset, but not counted against the endpoint.
  reset_reused,
  local_abort,      // downstream went away or the proxy stopped; not the endpoint's fault
};

// Local-origin failures: the proxy's own observation that the endpoint is not there (Envoy's
// local-origin errors). The request reached no application, or not in a way anyone saw.
inline bool is_local_origin(Outcome o) { return o == Outcome::connect_failure || o == Outcome::reset; }

// Whether the outcome counts as the endpoint's failure for outlier detection.
inline bool is_endpoint_failure(Outcome o) {
  return o == Outcome::http_5xx || o == Outcome::gateway_error || o == Outcome::timeout || is_local_origin(o);
}

// The outcome of a response with this status.
inline Outcome outcome_of_status(unsigned status) {
  if (status == 502 || status == 503 || status == 504) return Outcome::gateway_error;
  return status >= 500 ? Outcome::http_5xx : Outcome::success;
}

const char* to_string(Outcome o);

// What a failed attempt allows (routing/retry.hpp): none; a retry after a local-origin failure (no
// budget); a retry after a response the application gave (within max_retries and the retry budget);
// the same after a failure of an endpoint that outlier detection has taken out (within max_retries,
// holding no budget: the failure is that endpoint's, and the retry goes to endpoints in rotation).
enum class RetryKind { none, local, budgeted, ejected_endpoint };

}  // namespace sluice::routing
