// Per-worker keep-alive pool of upstream connections, keyed by endpoint.
//
// Only the worker's own thread touches it, so it takes no lock. A connection
// goes back only after a complete exchange whose response allowed keep-alive;
// anything else is closed by its owner. Idle connections are closed after the
// idle timeout, beyond the per-endpoint cap, and when their endpoint leaves
// the routing table (forget_except).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/beast/core/flat_buffer.hpp>

#include "config/config.hpp"
#include "proxy/stream.hpp"

namespace sluice::proxy {

struct UpstreamConnection {
  UpstreamConnection(Stream s, std::string key) : stream(std::move(s)), pool_key(std::move(key)) {
    reserve_buffer();
  }

  static constexpr std::size_t kReadBuffer = 16 * 1024;

  // A full response head in one read, not Beast's 512-byte first step. Again when a pooled connection whose
  // buffers were released is taken.
  void reserve_buffer() {
    if (buffer.capacity() < kReadBuffer) buffer.reserve(kReadBuffer);
  }
  // An idle connection's buffers back to the heap (the read buffer, and a TLS stream's): nothing when bytes
  // are buffered, or when released already (the read buffer has no capacity left then).
  void release_buffers() {
    if (buffer.size() != 0 || buffer.capacity() == 0) return;
    buffer.shrink_to_fit();
    if (auto* tls = stream.tls()) tls->release_buffers();
  }

  Stream stream;
  beast::flat_buffer buffer;   // bytes read past the last response (normally none)
  std::string pool_key;        // "address:port" (+ "|tls") of the endpoint
  std::chrono::steady_clock::time_point idle_since{};
  std::uint64_t requests = 0;  // exchanges completed on this connection
  std::string alpn;            // the protocol ALPN chose over TLS ("h2", "http/1.1"), empty when none
};

class UpstreamPool {
 public:
  explicit UpstreamPool(const config::UpstreamPool& cfg) : cfg_(cfg) {}

  // A live idle connection to `key`, most recently used first; null when none. A connection idle for more
  // than a moment is checked with a non-blocking peek and discarded when the peer closed it, so a request is
  // not sent into a dead socket.
  std::unique_ptr<UpstreamConnection> take(const std::string& key);

  // Returns a connection after a complete keep-alive exchange. Closes it when the endpoint's idle list is full.
  void give_back(std::unique_ptr<UpstreamConnection> conn, std::chrono::steady_clock::time_point now);

  // Closes connections idle for longer than the idle timeout.
  void sweep(std::chrono::steady_clock::time_point now);

  // Closes idle connections to endpoints not in `live_keys` (they left the routing table).
  void forget_except(const std::unordered_set<std::string>& live_keys);

  void close_all();
  std::size_t idle_count() const;

 private:
  config::UpstreamPool cfg_;
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConnection>>> idle_;
};

}  // namespace sluice::proxy
