// How one attempt to an endpoint went, as the proxy reports it to routing.
#pragma once

namespace sluice::routing {

enum class Outcome {
  success,          // any response that is not a failure below
  http_5xx,         // 5xx from the endpoint (counts towards outlier ejection)
  connect_failure,  // request never sent
  reset,            // connection lost before any response byte
  timeout,          // no response within the response timeout
  local_abort,      // downstream went away; not the endpoint's fault
};

// Whether the outcome counts as the endpoint's failure for outlier detection.
inline bool is_endpoint_failure(Outcome o) {
  return o == Outcome::http_5xx || o == Outcome::connect_failure || o == Outcome::reset ||
         o == Outcome::timeout;
}

}  // namespace sluice::routing
