// One request stream of an Http2Session: what nghttp2's callbacks recorded for it and what its coroutine
// hands back. Private to http2_session*.cpp. Worker thread only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nghttp2/nghttp2.h>

#include <boost/asio/steady_timer.hpp>

#include "proxy/h2_headers.hpp"
#include "proxy/http2_session.hpp"
#include "proxy/upstream_pool.hpp"

namespace sluice::proxy {

struct Http2Session::H2Stream {
  H2Stream(net::io_context& ioc, std::int32_t stream_id) : id(stream_id), wake(ioc) {}

  std::int32_t id;
  // The request head (on_header).
  H2RequestLine line;
  std::vector<H2Field> fields;
  std::size_t header_bytes = 0;
  bool too_large = false;       // beyond limits.max_request_header_bytes / max_request_headers
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
  UpstreamConnection* upstream = nullptr;  // in use, for shut()
  // Wakes the coroutine when something arrived for it (or the stream or connection closed).
  net::steady_timer wake;
  bool woken = false;

  void notify() {
    woken = true;
    wake.cancel();
  }

  // nghttp2's data provider: copies from body_out, defers when it is empty and the body is not over.
  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void*);
};

}  // namespace sluice::proxy
