// One request stream of an Http2Session: what nghttp2's callbacks recorded for it and what its coroutine
// hands back. Private to http2_session*.cpp. Worker thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nghttp2/nghttp2.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "proxy/h2_headers.hpp"
#include "proxy/http2_session.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/outcome.hpp"

namespace sluice::proxy {

struct Http2Session::H2Stream {
  H2Stream(net::io_context& context, std::int32_t stream_id) : id(stream_id), ioc(&context) {}

  std::int32_t id;
  // The request head (on_header).
  H2RequestLine line;
  H2FieldList fields;
  std::size_t header_bytes = 0;
  bool too_large = false;       // beyond limits.max_request_header_bytes / max_request_headers
  // Request trailers (a trailing HEADERS with END_STREAM): passed on as chunked trailers to an HTTP/1.1
  // endpoint, as a trailing HEADERS to an HTTP/2 one.
  std::vector<H2Field> trailers_in;
  // Request body: received, not yet written upstream (bounded by the stream window, as bytes are
  // consumed only once written).
  std::string body_in;
  bool end_stream = false;      // the client has sent all of it
  bool closed = false;          // nghttp2 closed the stream (complete, or reset by either side)
  std::uint32_t close_error = 0;
  bool finished = false;        // the coroutine is done: later body bytes are consumed unread
  // Response body waiting for the data provider (at most about kOutHigh).
  std::string body_out;
  std::size_t out_pos = 0;
  bool out_eof = false;
  bool deferred = false;        // the provider said NGHTTP2_ERR_DEFERRED: resume once there is more
  // Response trailers (from an HTTP/2 endpoint): the provider ends the DATA without END_STREAM and sets
  // trailers_due; the stream's coroutine then submits them (nothing calls into nghttp2 from its callbacks).
  std::vector<H2Field> trailers_out;
  bool trailers_due = false;
  bool grpc = false;            // content-type application/grpc*: sluice's own errors are gRPC statuses
  // When the request must be over (grpc-timeout, bounded by timeouts.response); max(): none.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  // The deadline passed while an HTTP/1.1 endpoint had the request (set by deadline_timer, which then cut
  // that connection): the attempt ends as a timeout, DEADLINE_EXCEEDED to the client.
  bool deadline_hit = false;
  std::optional<net::steady_timer> deadline_timer;  // only for a gRPC call with grpc-timeout
  UpstreamConnection* upstream = nullptr;  // in use, for shut()
  // Wakes the coroutine when something arrived for it (or the stream or connection closed): its wait()'s
  // completion handler, kept here rather than in a timer operation per wait (the wait's limit is the
  // session's one timer, Http2Session::sweep_). Completed by a post, never from inside an nghttp2 callback.
  net::io_context* ioc;
  StreamWaiter waiter;
  std::chrono::steady_clock::time_point wait_until;  // while waiter is set: when the wait times out
  bool woken = false;

  void notify() {
    woken = true;
    if (waiter) complete_wait({});
  }
  // Resumes the waiting coroutine (posted); `ec`: timed_out when the limit passed.
  void complete_wait(boost::system::error_code ec) {
    post_recycled(*ioc, [w = std::move(waiter), ec]() mutable { w.complete(ec); });
  }

  // nghttp2's data provider: copies from body_out, defers when it is empty and the body is not over.
  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void*);
};

// How one attempt at an HTTP/2 endpoint went (Http2Session::attempt_h2).
struct Http2Session::H2Attempt {
  enum class Result {
    failed,     // nothing went to the client: outcome and failure say why (the caller retries or answers)
    retry,      // a response came that routing chose to retry (retry_instead said so)
    relayed,    // the response went to the client (whole, or cut: outcome says)
    use_http1,  // `auto`: ALPN chose http/1.1; the request goes over HTTP/1.1 instead
  };
  Result result = Result::failed;
  routing::Outcome outcome = routing::Outcome::success;
  unsigned status = 0;
  std::string failure;
  bool body_streamed = false;  // request body beyond `first` went upstream: not replayable
};

}  // namespace sluice::proxy
