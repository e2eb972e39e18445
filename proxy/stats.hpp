// Counters kept per worker. Each is written by its worker thread only and read
// by the admin thread, so relaxed atomics suffice and no cache line is shared
// between workers on the request path.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "proxy/idle_signal.hpp"

namespace sluice::proxy {

struct Counter {
  std::atomic<std::uint64_t> value{0};
  // Single writer: a plain load + store is enough and cheaper than a locked add.
  void add(std::uint64_t n = 1) { value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t get() const { return value.load(std::memory_order_relaxed); }
};

struct Gauge {
  std::atomic<std::int64_t> value{0};
  void inc() { value.store(value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void dec() { value.store(value.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed); }
  std::int64_t get() const { return value.load(std::memory_order_relaxed); }
};

// Requests in flight: a Gauge that notifies `idle` (when set, before the worker starts) each time it falls
// to zero, so that a drain waits for the last request without polling. Costs a compare per request end.
struct RequestGauge {
  std::atomic<std::int64_t> value{0};
  IdleSignal* idle = nullptr;
  void inc() { value.store(value.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void dec() {
    const auto now = value.load(std::memory_order_relaxed) - 1;
    value.store(now, std::memory_order_relaxed);
    if (now == 0 && idle) idle->notify();
  }
  std::int64_t get() const { return value.load(std::memory_order_relaxed); }
};

struct WorkerStats {
  Counter downstream_connections;
  Gauge downstream_active_connections;
  RequestGauge active_requests;
  Counter requests;
  std::array<Counter, 6> responses_by_class;  // index 1..5 = 1xx..5xx
  Counter bad_requests;        // 400/431 answered by the proxy itself
  Counter no_route;            // 404 answered by the proxy
  Counter no_endpoint;         // 503 answered by the proxy
  Counter upstream_connects;
  Counter upstream_connect_failures;
  Counter upstream_tls_resumptions;  // upstream TLS handshakes that resumed a session (no certificate exchange)
  Counter upstream_reuses;     // requests sent on a pooled keep-alive connection
  Counter upstream_resets;
  Counter upstream_timeouts;
  Counter retries;
  Counter bytes_received;      // request body bytes from clients
  Counter bytes_sent;          // response body bytes to clients
  // Upgrades (WebSocket and any Upgrade token): by how they went, and the tunnels they became.
  Counter upgrades_switched;   // the endpoint answered 101: a tunnel
  Counter upgrades_declined;   // the endpoint answered something else: relayed, the connection stays HTTP
  Counter upgrades_refused;    // by the proxy: tunnel limit, draining
  Gauge tunnels_active;
  Counter tunnel_bytes_up;     // client -> endpoint
  Counter tunnel_bytes_down;   // endpoint -> client
  Counter tunnels_closed;
  Counter tunnel_seconds;      // total duration of closed tunnels, whole seconds (with tunnels_closed: mean)
  // HTTP/2 downstream (its streams also count in requests, active_requests and the responses above).
  Counter h2_connections;      // connections that spoke HTTP/2 (h2c prior knowledge or ALPN h2)
  Counter h2_streams;          // request streams on them
  // Overload (limits.max_connections_per_worker, limits.max_requests_per_worker, descriptor exhaustion).
  Counter accept_paused;            // times an acceptor stopped accepting at the connection limit
  Gauge acceptors_paused;           // acceptors waiting now (connection limit or descriptor backoff)
  Counter accept_no_descriptors;    // accepts that failed with EMFILE/ENFILE/ENOBUFS/ENOMEM
  Counter requests_overloaded;      // requests answered 503 at the in-flight limit
};

}  // namespace sluice::proxy
