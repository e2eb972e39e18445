// An upgraded connection once the endpoint answered 101 (WebSocket, or any HTTP/1.1 Upgrade token): a
// two-way byte tunnel between the client's socket and the endpoint's.
//
// Each direction reads into its own buffer and writes that out before it reads again, so a slow reader
// on one side slows the other side's reads (backpressure, as the body relay does) and a tunnel never holds
// more than one buffer per direction. An end of stream on one side is passed on as a half close (TCP); an
// error on either side, or an end of stream over TLS, closes both. The request timeouts no longer apply:
// the tunnel has an idle timeout (no byte either way) and an optional maximum lifetime. Nothing of the
// routing table is held: a reload, a snapshot swap or the endpoint leaving discovery leaves it running.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include "net/net.hpp"
#include "proxy/stream.hpp"

namespace sluice::proxy {

struct WorkerStats;

struct TunnelLimits {
  std::chrono::milliseconds idle_timeout{3600000};
  std::chrono::milliseconds max_lifetime{0};  // 0: none
};

struct TunnelResult {
  std::uint64_t bytes_up = 0;    // client -> endpoint
  std::uint64_t bytes_down = 0;  // endpoint -> client
  std::string_view closed_by;    // "client", "upstream", "idle", "lifetime", "proxy"
  std::chrono::steady_clock::duration duration{};
};

class Tunnel {
 public:
  // `client_early` and `upstream_early` hold bytes each side sent past its HTTP head; they go first.
  Tunnel(Stream& client, beast::flat_buffer& client_early, Stream& upstream, beast::flat_buffer& upstream_early,
         TunnelLimits limits, WorkerStats& stats);

  // Runs until both directions ended (or the idle timeout, the lifetime, or close() ended them).
  net::awaitable<TunnelResult> run();

  // Ends the tunnel from outside (the proxy stops): closes both sockets. Worker thread.
  void close(std::string_view why);

 private:
  static constexpr std::size_t kBuffer = 16 * 1024;

  net::awaitable<void> pump(Stream& from, beast::flat_buffer& early, Stream& to, bool up);
  net::awaitable<void> watch();
  void note_end(std::string_view who);

  Stream& client_;
  beast::flat_buffer& client_early_;
  Stream& upstream_;
  beast::flat_buffer& upstream_early_;
  TunnelLimits limits_;
  WorkerStats& stats_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_activity_ = started_;
  TunnelResult result_;
  bool closed_ = false;
};

}  // namespace sluice::proxy
