// One downstream HTTP/1.1 connection: reads request heads (with limits and a
// slowloris deadline), routes each request, forwards it with bodies streamed
// both ways, and keeps the connection alive between requests.
//
// Written as C++20 coroutines: each protocol step is one `co_await` with its
// own deadline armed right before it. Runs on its worker's thread only.
#pragma once

#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "proxy/access_log.hpp"
#include "proxy/head_fields.hpp"
#include "proxy/pooled_frame.hpp"
#include "proxy/stream.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/picker.hpp"

namespace sluice::proxy {

class Worker;
class FramedPiece;
class Tunnel;
struct ListenerInfo;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Worker& worker, std::shared_ptr<const ListenerInfo> listener, Stream stream, std::string client_ip);
  ~HttpSession();

  // The connection's life: handshake (TLS), then requests until close. Worker thread.
  net::awaitable<void> run();

  // Drain: close now when idle between requests; otherwise close after the current response.
  void on_drain();

  // Stop: close the connection now, and the upstream connection of the request in flight if any (that
  // request is cut; its endpoint is not blamed). A WebSocket tunnel gets close frames 1001 Going Away
  // first where the proxy can frame them (proxy/tunnel.hpp). Worker thread.
  void abort();

 private:
  static constexpr std::size_t kBodyBuffer = 64 * 1024;  // relay buffer for bodies, both ways

  enum class State { reading_head, busy, idle };
  enum class SendResult { ok, upstream_failed, downstream_failed };
  enum class Next { keep_alive, close };
  // Heads parse into recycled storage (proxy/head_fields.hpp).
  using request_parser = request_head_parser;
  using response_parser = response_head_parser;

  // One attempt at an endpoint: how it went, and what it leaves to relay.
  struct Attempt {
    routing::Outcome outcome = routing::Outcome::success;
    unsigned status = 0;              // the response's status, when one came
    bool body_streamed = false;       // body beyond the first piece went upstream: not replayable
    bool downstream_failed = false;   // the client's body broke while it was being sent
    std::unique_ptr<UpstreamConnection> up;
    std::optional<response_parser> response;  // set when a response head arrived
    std::string failure;              // why it failed (error body, log)
    bool no_descriptors = false;      // the connect failed for lack of descriptors here: 503, not 502
  };

  // One step per function, in the order a request takes them (one file per step).

  // 1. The connection (http_session.cpp).
  net::awaitable<bool> read_head();
  net::awaitable<void> close();
  // The connection speaks HTTP/2 (preface seen, or ALPN h2): an Http2Session serves it to the end.
  net::awaitable<void> run_http2();

  // 2. The request (http_session_request.cpp): checks, limits, the pick, and the answers sluice writes itself.
  net::awaitable<Next> handle_request();
  routing::RequestView request_view(const std::string& authority) const;
  net::awaitable<bool> read_body_piece(std::size_t& got);
  net::awaitable<void> send_continue();
  // `retry_after`: non-empty, a Retry-After field (a 503 at the in-flight limit).
  net::awaitable<Next> send_error(http::status status, std::string_view text, Next next, RequestLog& log,
                                  std::string_view retry_after = {});

  // 3. The attempts (http_session_forward.cpp).
  // Forwards the request to pick_ (the first attempt's endpoint), retrying as routing allows.
  net::awaitable<Next> forward(routing::AttemptState& attempt, RequestLog& log);
  net::awaitable<void> try_endpoint(const routing::PickResult& picked, std::size_t first_piece, Attempt& a);
  // The rest of a request body beyond its first piece (try_endpoint writes the head and that piece).
  net::awaitable<SendResult> send_body(UpstreamConnection& up, bool chunked, bool& body_streamed);
  // Writes `head` (may be empty) and the first `size` bytes of body_buf_, framed as chunks when `chunked`
  // (with the last chunk when `last`), under `timeout`. Returns false when the write failed. `batchable`:
  // may wait for the worker's write batch (proxy/write_batch.hpp) when other requests are in flight.
  std::string request_last_chunk(bool chunked, bool last) const;
  net::awaitable<bool> write_framed(Stream& stream, std::string_view head, std::size_t size, bool chunked, bool last,
                                    std::chrono::steady_clock::duration timeout, bool batchable = false);
  // write_framed in parts, for the hot paths: write_now tries the write synchronously and returns true
  // when that settled it (`ok`: all written), false when the rest is left from `written`: to the worker's
  // batch first when `batchable` and joins_batch() (nothing written yet then), and to write_rest (a full
  // socket buffer, TLS). The piece must stay where it is until the write is done. `more`: more of the
  // message follows at once (MSG_MORE; the caller pushes before it waits: relay_sized_body).
  bool write_now(Stream& stream, const FramedPiece& piece, bool batchable, std::size_t& written, bool& ok,
                 bool more = false);
  bool joins_batch(Stream& stream) const;
  net::awaitable<bool> write_rest(Stream& stream, const FramedPiece& piece, std::size_t written,
                                  std::chrono::steady_clock::duration timeout);
  net::awaitable<Next> answer_failure(const Attempt& a, RequestLog& log);

  // 4. The answer (http_session_relay.cpp). `complete`: the whole response was read from the endpoint.
  net::awaitable<Next> relay_response(UpstreamConnection& up, response_parser& res_parser,
                                      const routing::PickResult& picked, bool& upstream_ok, bool& complete,
                                      RequestLog& log);
  // The response body, after its head (written with the first piece, `head_sent` then true): through
  // Beast's parser (any framing, TLS), or straight from a plain TCP socket when its length is known.
  enum class BodyEnd { done, upstream_failed, downstream_failed };
  net::awaitable<BodyEnd> relay_parsed_body(UpstreamConnection& up, response_parser& rp, bool chunked,
                                            unsigned status, bool& head_sent, boost::system::error_code& ec,
                                            RequestLog& log);
  net::awaitable<BodyEnd> relay_sized_body(UpstreamConnection& up, std::uint64_t length, unsigned status,
                                           bool& head_sent, boost::system::error_code& ec, RequestLog& log);
  void count_response(unsigned status);  // responses_by_class
  // After a 101 to an upgrade request: the 101 goes to the client, then the connection is a tunnel
  // (proxy/tunnel.hpp) until either side ends it. The session ends with it.
  net::awaitable<Next> run_tunnel(Attempt& a, const routing::PickResult& picked, RequestLog& log);

  // Steps 3 and 4 with an endpoint spoken to over HTTP/2 (http_session_h2.cpp): send the request and wait
  // for the response head (`a` says how it went; x->use_http1: `auto` chose HTTP/1.1), then relay it.
  struct H2Exchange;
  net::awaitable<void> h2_exchange(const routing::PickResult& picked, std::size_t first_piece, Attempt& a,
                                   std::unique_ptr<H2Exchange>& x);
  net::awaitable<Next> relay_h2_response(H2Exchange& x, const routing::PickResult& picked, bool& upstream_ok,
                                         RequestLog& log);

  Worker& worker_;
  std::shared_ptr<const ListenerInfo> listener_;
  Stream stream_;
  std::string client_ip_;
  beast::flat_buffer buffer_;
  std::optional<request_parser> parser_;
  std::unique_ptr<char[]> body_buf_;  // relay buffer, allocated on the first body
  std::string head_;                  // the outgoing head being written (capacity reused across requests)
  std::string pool_key_;              // the upstream pool key of the current attempt (take_pooled's scratch)
  State state_ = State::reading_head;
  bool first_request_ = true;
  std::uint64_t request_body_bytes_ = 0;  // body bytes read from the client for the current request
  // A chunked request's head field count, taken before its body is read: Beast appends the trailers after
  // them, and an HTTP/2 endpoint gets those as a trailing HEADERS (http_session_h2.cpp).
  std::size_t head_fields_ = 0;
  bool close_after_ = false;
  unsigned client_version_ = 11;      // 10 once the current request line says HTTP/1.0 (for local replies)
  std::string_view upgrade_;          // the current request's Upgrade token when it asks for one, else empty
  Tunnel* tunnel_ = nullptr;          // the tunnel this connection became, for abort()
  bool aborted_ = false;
  UpstreamConnection* upstream_ = nullptr;  // the request in flight's upstream connection, for abort()
  std::list<HttpSession*>::iterator registration_;
  bool h2_preface_ = false;                  // read_head saw the HTTP/2 connection preface
  std::shared_ptr<class Http2Session> h2_;  // set while the connection speaks HTTP/2
  // Per-request state kept for its storage: the strings in these keep their capacity between requests.
  RequestLog log_;                // the current request's access-log entry
  routing::PickResult pick_;      // the current attempt's pick (held by forward's ReportedPick)
  routing::PickResult retry_pick_;  // where a retry's pick is made before it replaces pick_
};

}  // namespace sluice::proxy
