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

// Where one direction's byte stream is in WebSocket framing (RFC 6455 5.2): between frames, or inside one
// with payload bytes still to pass. The proxy only relays bytes; this lets it tell when a close frame of
// its own could go in without cutting a frame.
class WebSocketFrames {
 public:
  void pass(const unsigned char* data, std::size_t size);
  bool between_frames() const { return remaining_ == 0 && have_ == 0; }

 private:
  std::uint64_t remaining_ = 0;  // payload bytes of the current frame still to come
  unsigned char header_[14] = {};
  std::size_t have_ = 0;         // header bytes seen so far
};

class Tunnel {
 public:
  // `client_early` and `upstream_early` hold bytes each side sent past its HTTP head; they go first.
  // `websocket`: the Upgrade token was "websocket", so the proxy may frame a close of its own.
  Tunnel(Stream& client, beast::flat_buffer& client_early, Stream& upstream, beast::flat_buffer& upstream_early,
         TunnelLimits limits, WorkerStats& stats, bool websocket);

  // Runs until both directions ended (or the idle timeout, the lifetime, or close() ended them).
  net::awaitable<TunnelResult> run();

  // Ends the tunnel from outside (the proxy stops): a WebSocket tunnel between frames on both sides and
  // over plain TCP first gets a close frame 1001 Going Away each way (written at once: a few bytes into
  // an idle socket); then both sockets close. Worker thread.
  void go_away();

  // Closes both sockets. Worker thread.
  void close(std::string_view why);

 private:
  static constexpr std::size_t kBuffer = 16 * 1024;

  class PlainRelay;

  net::awaitable<void> pump(Stream& from, beast::flat_buffer& early, Stream& to, bool up);
  // After the early bytes: both sides plain TCP (handler-driven, PlainRelay), or either over TLS.
  net::awaitable<void> relay_plain(tcp::socket& from, tcp::socket& to, bool up);
  net::awaitable<void> relay_tls(Stream& from, Stream& to, bool up);
  net::awaitable<void> watch();
  void note_end(std::string_view who);
  // `n` bytes went on in direction `up`: counted, and followed through WebSocket framing.
  void passed(bool up, const char* data, std::size_t n);
  // A read in direction `up` failed with `ec`: an end of stream is passed on as a half close when
  // `half_close` (plain TCP both sides), anything else closes the tunnel.
  void read_ended(boost::system::error_code ec, tcp::socket& to, bool up, bool half_close);

  Stream& client_;
  beast::flat_buffer& client_early_;
  Stream& upstream_;
  beast::flat_buffer& upstream_early_;
  TunnelLimits limits_;
  WorkerStats& stats_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  TunnelResult result_;
  bool closed_ = false;
  bool websocket_ = false;
  WebSocketFrames frames_up_, frames_down_;  // what each direction has passed on
  bool writing_up_ = false, writing_down_ = false;  // a write is in flight (a frame may be half out)
};

}  // namespace sluice::proxy
