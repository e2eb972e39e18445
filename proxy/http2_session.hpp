// One downstream HTTP/2 connection (h2c with prior knowledge, or h2 chosen by ALPN), owned by the
// HttpSession that detected it. libnghttp2 frames and decodes (HPACK, flow control, stream states, flood
// limits); this class drives it on the worker's io_context: a read loop feeds nghttp2_session_mem_recv, one
// writer (a handler chain) drains nghttp2_session_mem_send, and each request stream runs as its own coroutine that
// routes, forwards and relays it exactly as an HTTP/1.1 request (proxy/upstream_connect.hpp), with the
// endpoint spoken to over HTTP/1.1. Nothing calls into the nghttp2 session from inside its callbacks: they
// only record what arrived; the coroutines act on it afterwards.
//
// Flow control follows consumption: automatic WINDOW_UPDATE is off and received body bytes are consumed
// once written upstream; response bodies go through a deferred data provider fed one piece at a time, so a
// stream holds at most its window of request body and kOutHigh of response body.
//
// Worker thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <nghttp2/nghttp2.h>

#include "proxy/h2_headers.hpp"
#include "proxy/pooled_frame.hpp"
#include "proxy/stream.hpp"
#include "proxy/stream_waiter.hpp"
#include "routing/picker.hpp"

namespace sluice::proxy {

class Worker;
struct ListenerInfo;
struct RequestLog;

class Http2Session : public std::enable_shared_from_this<Http2Session> {
 public:
  // Defaults (nghttp2's and Envoy's are close): streams per connection, windows.
  static constexpr std::uint32_t kMaxConcurrentStreams = 1024;
  static constexpr std::int32_t kStreamWindow = 256 * 1024;
  static constexpr std::int32_t kConnectionWindow = 4 * 1024 * 1024;
  static constexpr std::size_t kOutHigh = 64 * 1024;  // response bytes buffered per stream before reading more
  static constexpr std::size_t kFieldsReserve = 16;   // regular request fields room is made for at once

  // `stream` and `already_read` (bytes read past the detection, starting with the preface) belong to the
  // owning HttpSession, which outlives run().
  Http2Session(Worker& worker, std::shared_ptr<const ListenerInfo> listener, Stream& stream,
               beast::flat_buffer& already_read, std::string client_ip);
  ~Http2Session();
  Http2Session(const Http2Session&) = delete;
  Http2Session& operator=(const Http2Session&) = delete;

  // Serves the connection until it ends; returns once every stream's coroutine has finished.
  net::awaitable<void> run();
  // Graceful drain: GOAWAY (no new streams), the open ones finish, then the connection closes.
  void drain();
  // Cuts the connection and every stream's upstream connection now.
  void abort();

 private:
  struct H2Stream;

  // nghttp2 callbacks: record only.
  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* self);
  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name, nghttp2_rcbuf* value,
                       std::uint8_t flags, void* self);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_data_chunk(nghttp2_session*, std::uint8_t flags, std::int32_t id, const std::uint8_t* data,
                           std::size_t len, void* self);
  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error, void* self);
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* self);

  bool feed(const char* data, std::size_t size);  // mem_recv + what it recorded; false: connection error
  void kick();                                     // makes sure the writer runs
  // One turn of the writer: what nghttp2 has to send, gathered into one write; again on its completion
  // until nothing is left (a plain handler chain: no coroutine to spawn per burst).
  void write_some();
  void shut();                                     // the connection is over: wake and cut everything

  // Starts a request stream: on an idle runner when there is one, else on a new runner.
  void start_stream(std::shared_ptr<H2Stream> s);
  // A coroutine that serves request streams one after the other: `first`, then each start_stream hands it
  // while it idles (at most kIdleRunners idle per connection). A co_spawn per stream cost a coroutine
  // frame and Asio's thread state from the heap (more frames in flight than Asio's own cache keeps) and
  // their set-up, several times what waking an idle runner costs.
  net::awaitable<void> stream_runner(std::shared_ptr<H2Stream> first);
  // One request stream (http2_stream.cpp).
  net::awaitable<void> handle_stream(std::shared_ptr<H2Stream> s);
  // Until something arrives for the stream (true) or `timeout` passes (false).
  net::awaitable<bool> wait(H2Stream& s, std::chrono::steady_clock::duration timeout);
  // The same until `until` (a caller that has read the clock already).
  net::awaitable<bool> wait_at(H2Stream& s, std::chrono::steady_clock::time_point until);
  // wait()'s answer when it would not suspend (something arrived already, or the stream or connection
  // closed): true, the wake-up taken. Callers test it first, which spares the wait's coroutine frame half of
  // the time.
  bool take_wake(H2Stream& s);
  // The waits' limits share one timer, armed for the earliest (a timer operation per wait cost more than
  // the rest of the wait): sweep() ends the waits whose limit passed and arms it for the next.
  void arm_sweep(std::chrono::steady_clock::time_point at);
  void sweep();
  // `retry_after`: non-empty, a retry-after field (a 503 at the in-flight limit). To a gRPC call the answer
  // is a trailers-only grpc-status: `grpc_status` when not negative (a limit says RESOURCE_EXHAUSTED), else
  // the mapping of `status` (grpc's HTTP-to-gRPC table).
  void respond_error(H2Stream& s, unsigned status, std::string_view text, RequestLog& log,
                     std::string_view retry_after = {}, int grpc_status = -1);
  void submit_response(H2Stream& s, const std::vector<H2Field>& fields, bool with_body);
  void submit_response(H2Stream& s, const std::vector<nghttp2_nv>& nva, bool with_body);
  void consume(H2Stream& s, std::size_t n);
  // How long a wait for the client may last: timeouts.stream_idle, cut short by the gRPC deadline.
  std::chrono::steady_clock::duration idle_limit(const H2Stream& s) const;
  bool past_deadline(const H2Stream& s) const;
  // Starts the stream's grpc-timeout timer (s.deadline set).
  void arm_deadline(const std::shared_ptr<H2Stream>& s);
  void finish_stream(H2Stream& s);
  // One attempt at an endpoint spoken to over HTTP/2 (http2_stream_h2.cpp).
  struct H2Attempt;
  // Whether to retry a response elsewhere instead of relaying it (called once, before anything went to the
  // client); a non-owning reference to the caller's lambda (a std::function would allocate per stream).
  struct RetryInstead {
    const void* context;
    bool (*call)(const void* context, routing::Outcome, unsigned status);
    bool operator()(routing::Outcome o, unsigned status) const { return call(context, o, status); }
    template <class F>
    static RetryInstead of(const F& f) {
      return {&f, [](const void* c, routing::Outcome o, unsigned st) { return (*static_cast<const F*>(c))(o, st); }};
    }
  };
  // `added_length`: a Content-Length sluice adds to the request (h2_upstream_request_fields).
  net::awaitable<void> attempt_h2(H2Stream& s, const routing::PickResult& picked, std::string_view added_length,
                                  const std::string& first, bool body_in_hand, RequestLog& log,
                                  RetryInstead retry_instead,
                                  H2Attempt& a);

  Worker& worker_;
  std::shared_ptr<const ListenerInfo> listener_;
  Stream& stream_;
  beast::flat_buffer& buffer_;
  std::string client_ip_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<H2Stream>> streams_;  // open streams nghttp2 knows
  std::vector<std::shared_ptr<H2Stream>> ready_;                          // request heads complete, to start
  static constexpr std::size_t kIdleRunners = 64;
  std::vector<StreamWaiter> idle_runners_;                 // parked stream_runners, woken by start_stream
  std::vector<std::shared_ptr<H2Stream>> handed_;          // streams handed to woken runners, not yet taken
  std::vector<std::pair<std::int32_t, std::size_t>> unclaimed_;           // body bytes no stream will use
  // Streams whose response ended (END_STREAM sent) before their request did: RST_STREAM(NO_ERROR) tells
  // the client to stop sending (RFC 9113 8.1); submitted by the writer, not from the callback.
  std::vector<std::int32_t> answered_early_;
  // Client stream ids: the highest opened, and ranges of odd ids skipped below it (a HEADERS on one of those
  // is a connection error). Clients count up by two, so there are rarely any; the oldest are forgotten.
  static constexpr std::size_t kMaxSkippedRanges = 16;
  std::int32_t last_client_stream_ = -1;
  std::vector<std::pair<std::int32_t, std::int32_t>> skipped_;
  // The stream the header block being received belongs to (on_begin_headers), so that on_header, called for
  // every field, needs no lookup in streams_; null when none (cleared when that stream closes).
  std::int32_t headers_id_ = 0;
  H2Stream* headers_stream_ = nullptr;
  std::vector<nghttp2_nv> nva_;  // submit_response's header list, reused (nghttp2 copies it)
  H2NvList nv_;                  // an HTTP/2 endpoint's request or response list, reused (nghttp2 copies it)
  std::string out_;        // bytes being written
  bool writing_ = false;   // a writer's turn is posted or its write is in flight
  bool closed_ = false;
  bool draining_ = false;
  unsigned live_ = 0;      // stream coroutines and the writer still running
  net::steady_timer quiet_;  // woken when live_ drops, for run()'s last wait
  net::steady_timer sweep_;  // the earliest waiting stream's limit (see arm_sweep)
  std::chrono::steady_clock::time_point sweep_at_ = std::chrono::steady_clock::time_point::max();
};

}  // namespace sluice::proxy

// The session's coroutines (a stream's handler, its attempts, its waits: several frames per stream, most
// over the 1020 bytes Asio recycles itself) get their frames from the recycler, as HttpSession's do
// (proxy/pooled_frame.hpp).
template <class T, class... Args>
struct std::coroutine_traits<boost::asio::awaitable<T, boost::asio::any_io_executor>, sluice::proxy::Http2Session&,
                             Args...> {
  using promise_type = sluice::proxy::PooledFrame<T>;
};
