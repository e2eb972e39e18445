// Step 3 of a request's way (http_session.cpp lists them all): the attempt loop (try an endpoint, let
// routing decide on a retry, then relay or answer the failure), connecting or reusing a pooled connection,
// streaming the request, reading the response head. Relaying the response is step 4,
// http_session_relay.cpp.
//
// Bodies are never held whole: one relay buffer moves each piece from one side
// to the other (Beast's buffer_body relay, made asynchronous). The first piece
// of a request body is read before the upstream is chosen for good, so a bad
// chunked body is refused before anything is forwarded, and a request whose
// body fits in that piece can still be retried on another endpoint.
#include <cassert>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/asio/write.hpp>

#include "log/logger.hpp"
#include "proxy/access_log.hpp"
#include "proxy/buffered_parse.hpp"
#include "proxy/forward_headers.hpp"
#include "proxy/h2_headers.hpp"
#include "proxy/h2_upstream.hpp"
#include "proxy/http_session.hpp"
#include "proxy/http_session_h2.hpp"
#include "proxy/reported_pick.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/upstream_connect.hpp"
#include "proxy/worker.hpp"
#include "routing/snapshot.hpp"

namespace sluice::proxy {
namespace {

bool expects_continue(const request_head& req) {
  auto it = req.find(http::field::expect);
  return req.version() == 11 && it != req.end() && beast::iequals(it->value(), "100-continue");
}

}  // namespace
// The attempt loop, as steps: pick (done by the caller, then by the retry), try the endpoint (connect,
// send, read the response head), decide (routing's retry rules), then relay or answer the failure. The
// pick is held by a ReportedPick, so routing hears each attempt's outcome exactly once.
net::awaitable<HttpSession::Next> HttpSession::forward(routing::AttemptState& attempt, RequestLog& log) {
  auto& req = parser_->get();
  auto& stats = worker_.stats();
  auto& picker = worker_.picker();
  ReportedPick picked(picker, pick_);

  // The first piece of the body is read before anything goes upstream: a malformed body is refused before
  // any of it is forwarded, and a body that fits in it can be replayed on another endpoint.
  std::size_t first_piece = 0;
  if (parser_->chunked()) head_fields_ = static_cast<std::size_t>(std::distance(req.begin(), req.end()));
  if (!parser_->is_done()) {
    if (expects_continue(req)) co_await send_continue();
    if (!co_await read_body_piece(first_piece)) {
      picked.report(routing::Outcome::local_abort);
      stats.bad_requests.add();
      co_return co_await send_error(http::status::bad_request, "malformed request body", Next::close, log);
    }
  }
  const bool body_in_hand = parser_->is_done();

  for (;;) {
    log.attempts = attempt.attempt;
    set_endpoint_text(*picked, log.upstream);
    log.dst_cluster = picked->cluster;
    log.tier = picked->tier;
    Attempt a;
    // abort() closes the attempt's upstream connection while it is in use.
    struct InUse {
      UpstreamConnection*& slot;
      ~InUse() { slot = nullptr; }
    } in_use{upstream_};
    std::unique_ptr<H2Exchange> h2;
    if (upstream_is_h2(worker_, *picked)) {
      co_await h2_exchange(*picked, first_piece, a, h2);
      if (h2->use_http1) h2.reset();  // `auto` and ALPN chose HTTP/1.1: the connection waits in the pool
    }
    if (!h2) co_await try_endpoint(*picked, first_piece, a);
    if (aborted_) {
      // stop() cut this request: nothing is sent or retried, and the endpoint did nothing wrong.
      picked.report(routing::Outcome::local_abort);
      co_return Next::close;
    }
    if (a.downstream_failed) {
      // A bad chunk (or a client gone quiet) after part of the body went upstream: the upstream connection
      // is dropped with the half request, and the client, who has no response yet, learns why.
      picked.report(routing::Outcome::local_abort);
      stats.bad_requests.add();
      co_return co_await send_error(http::status::bad_request, "malformed or incomplete request body",
                                    Next::close, log);
    }
    if (a.status == 101) {
      picked.report(upgrade_.empty() ? routing::Outcome::reset : routing::Outcome::success);
      if (upgrade_.empty()) {
        // Switching protocols without being asked: nothing after this head can be read as HTTP.
        co_return co_await send_error(http::status::bad_gateway, "upstream " + log.upstream +
                                      " switched protocols without an upgrade request", Next::close, log);
      }
      co_return co_await run_tunnel(a, *picked, log);
    }
    if (!upgrade_.empty() && a.outcome == routing::Outcome::success) worker_.stats().upgrades_declined.add();
    if (a.outcome != routing::Outcome::success) {
      picked.report(a.outcome);
      const bool replayable = body_in_hand && !a.body_streamed;
      if (picker.may_retry(*picked, a.outcome, req.method_string(), replayable, attempt)) {
        auto& next = retry_pick_;
        picker.pick_into(request_view(log.authority), attempt, next);
        if (next.status == routing::PickStatus::ok) {
          stats.retries.add();
          log::debug("retrying " + log.method + " " + log.path + " on " + endpoint_text(next) + " after " +
                     routing::to_string(a.outcome) + ": " +
                     (a.failure.empty() ? "status " + std::to_string(a.status) : a.failure));
          picked.replace(std::move(next));
          continue;
        }
      }
      // No retry: a response the endpoint gave goes to the client as it is; otherwise say what failed.
      if (!a.response && !(h2 && a.status != 0)) co_return co_await answer_failure(a, log);
    }
    if (h2) {
      bool upstream_ok = false;
      const auto next = co_await relay_h2_response(*h2, *picked, upstream_ok, log);
      picked.report(upstream_ok ? a.outcome : aborted_ ? routing::Outcome::local_abort : routing::Outcome::reset);
      co_return next;
    }
    bool upstream_ok = false;
    bool complete = false;  // the whole response was read (its parser need not have seen the body)
    const auto next = co_await relay_response(*a.up, *a.response, *picked, upstream_ok, complete, log);
    picked.report(upstream_ok ? a.outcome : aborted_ ? routing::Outcome::local_abort : routing::Outcome::reset);
    if (upstream_ok && complete && a.response->get().keep_alive()) {
      ++a.up->requests;
      worker_.pool().give_back(std::move(a.up), std::chrono::steady_clock::now());
    }
    co_return next;
  }
}

// Connect (or reuse a pooled connection), send the request, read the response head.
net::awaitable<void> HttpSession::try_endpoint(const routing::PickResult& picked, std::size_t first_piece,
                                               Attempt& a) {
  // A pooled connection (the usual case) without connect_upstream's coroutine frame.
  a.up = take_pooled(worker_, picked, pool_key_);
  if (!a.up) a.up = co_await connect_upstream(worker_, picked, a.failure, &a.no_descriptors);
  upstream_ = a.up.get();
  if (aborted_) co_return;
  if (!a.up) {
    // Out of descriptors here: the endpoint did nothing wrong (no ejection, no retry elsewhere, which would
    // fail the same way).
    a.outcome = a.no_descriptors ? routing::Outcome::local_abort : routing::Outcome::connect_failure;
    co_return;
  }
  // A connection from the pool that fails before any response byte was most likely closed by the
  // endpoint while idle: retried, not held against the endpoint.
  const bool reused = a.up->requests > 0;
  // The upstream has nothing to say before it has the request: its response will come with a readiness
  // event. (A close it sent while the connection sat in the pool is answered by a reset once we send.)
  a.up->stream.mark_drained();
  // The head and the first piece of the body (read before the endpoint was chosen) in one write, sent with
  // the worker's batch of requests when other requests are in flight. Written here, not in a coroutine of
  // its own: most requests are this one write (send_body streams the rest of a longer body).
  auto& up = *a.up;
  const auto& req = parser_->get();
  const bool chunked = req.chunked();
  write_request_head(req,
                     RequestHeadParts{req.method_string(), picked.upstream_target, picked.host_header, client_ip_,
                                      stream_.is_tls(), chunked, upgrade_},
                     head_);
  const auto response_timeout = worker_.settings().timeouts.response;
  const std::string last_chunk = request_last_chunk(chunked, parser_->is_done());
  const FramedPiece piece(head_, body_buf_.get(), first_piece, chunked, parser_->is_done(), last_chunk);
  std::size_t written = 0;
  bool ok = false;
  if (!write_now(up.stream, piece, true, written, ok)) {
    if (written == 0 && joins_batch(up.stream)) {
      boost::system::error_code ec;
      std::tie(ec, written) = co_await worker_.write_batch().async_write_some(up.stream.transport().socket(),
                                                                               piece.buffers(), use_nothrow);
      ok = !ec || ec == net::error::would_block || ec == net::error::try_again;
      if (ok && written < net::buffer_size(piece.buffers())) {
        ok = co_await write_rest(up.stream, piece, written, response_timeout);
      }
    } else {
      ok = co_await write_rest(up.stream, piece, written, response_timeout);
    }
  }
  auto sent = ok ? SendResult::ok : SendResult::upstream_failed;
  if (ok && !parser_->is_done()) sent = co_await send_body(up, chunked, a.body_streamed);
  if (sent == SendResult::upstream_failed) a.failure = "upstream " + up.pool_key + " failed while sending the request";
  if (sent == SendResult::downstream_failed) {
    a.downstream_failed = true;
    co_return;
  }
  if (sent == SendResult::upstream_failed) {
    a.outcome = reused ? routing::Outcome::reset_reused : routing::Outcome::reset;
    co_return;
  }
  auto r = co_await read_upstream_response_head(worker_, *a.up, a.response,
                                                parser_->get().method() == http::verb::head, picked, reused);
  a.outcome = r.outcome;
  a.status = r.status;
  if (!r.failure.empty()) a.failure = std::move(r.failure);
}

// The rest of a request body that did not fit in the first piece, piece by piece as it comes.
net::awaitable<HttpSession::SendResult> HttpSession::send_body(UpstreamConnection& up, bool chunked,
                                                               bool& body_streamed) {
  const auto response_timeout = worker_.settings().timeouts.response;
  bool ok = true;
  while (ok && !parser_->is_done()) {
    std::size_t got = 0;
    if (!co_await read_body_piece(got)) co_return SendResult::downstream_failed;
    body_streamed = true;
    ok = co_await write_framed(up.stream, {}, got, chunked, parser_->is_done(), response_timeout);
  }
  co_return ok ? SendResult::ok : SendResult::upstream_failed;
}

// A chunked request's trailers (the fields the parser added after the head's) end its last chunk: the last
// chunk with them, or empty (FramedPiece's plain "0\r\n\r\n") when there are none or the body goes on.
std::string HttpSession::request_last_chunk(bool chunked, bool last) const {
  const auto& req = parser_->get();
  if (!chunked || !last || static_cast<std::size_t>(std::distance(req.begin(), req.end())) <= head_fields_) return {};
  return h1_last_chunk(h1_trailers_of(req, head_fields_));
}

net::awaitable<bool> HttpSession::write_framed(Stream& stream, std::string_view head, std::size_t size, bool chunked,
                                               bool last, std::chrono::steady_clock::duration timeout,
                                               bool batchable) {
  const std::string last_chunk = request_last_chunk(chunked, last);
  const FramedPiece piece(head, body_buf_.get(), size, chunked, last, last_chunk);
  std::size_t written = 0;
  bool ok = false;
  if (write_now(stream, piece, batchable, written, ok)) co_return ok;
  if (written == 0 && batchable && joins_batch(stream)) {
    boost::system::error_code ec;
    std::tie(ec, written) =
        co_await worker_.write_batch().async_write_some(stream.transport().socket(), piece.buffers(), use_nothrow);
    if (ec && ec != net::error::would_block && ec != net::error::try_again) co_return false;
    if (written == net::buffer_size(piece.buffers())) co_return true;
  }
  co_return co_await write_rest(stream, piece, written, timeout);
}

bool HttpSession::write_now(Stream& stream, const FramedPiece& piece, bool batchable, std::size_t& written, bool& ok,
                            bool more) {
  // Plain TCP is tried with one non-blocking write first: the socket buffer normally takes it all, and an
  // asynchronous write that completes at once still costs a trip round the event loop (and this function is
  // not a coroutine, so the usual case costs no coroutine frame either). A `batchable` write joins the
  // worker's batch instead when there is one to gather (joins_batch: other requests in flight; the caller
  // awaits the batch); a lone request goes at once, as waiting for the batch would only add a turn of the
  // loop to its latency.
  //
  // Synchronous writes (this write_some and the batch's) on a socket that also sees asynchronous operations
  // are safe because no asynchronous operation is in flight on it at this moment: a session's coroutine is
  // the only user of its streams and takes one step at a time. The downstream socket is read only in
  // read_head() and read_body_piece(), whose reads have completed before this runs (no read is kept pending
  // while a response is relayed), and written only here and by send_error()/send_continue(), awaited in
  // turn. An upstream connection belongs to this attempt alone (the pool holds idle ones, with nothing
  // pending), and its response is read only after the request is sent. on_drain() and abort() start no
  // operation: they close the socket, on this same thread, between steps. Both sockets are non-blocking
  // (set when the session and the upstream connection are made), so the write never blocks the worker.
  written = 0;
  boost::system::error_code ec;
  if (auto* tls = stream.tls()) {
    // TLS the same way: encrypted now, sent as far as the socket takes it (write_rest sends the rest).
    written = tls->write_now(piece.buffers(), ec);
    ok = !ec && written == net::buffer_size(piece.buffers()) && tls->flushed();
    return ok || ec;
  }
  if (batchable && joins_batch(stream)) return false;
  assert(!stream.transport().socket().is_open() || stream.transport().socket().non_blocking());
  written = more ? stream.transport().socket().send(piece.buffers(), MSG_MORE, ec)
                 : stream.transport().socket().write_some(piece.buffers(), ec);
  if (ec && ec != net::error::would_block && ec != net::error::try_again) {
    ok = false;
    return true;
  }
  ok = written == net::buffer_size(piece.buffers());
  return ok;
}

bool HttpSession::joins_batch(Stream& stream) const {
  return !stream.is_tls() && worker_.stats().active_requests.get() > 1;
}

net::awaitable<bool> HttpSession::write_rest(Stream& stream, const FramedPiece& piece, std::size_t written,
                                             std::chrono::steady_clock::duration timeout) {
  beast::buffers_suffix<std::array<net::const_buffer, 5>> rest(piece.buffers());
  rest.consume(written);
  stream.set_deadline_after(timeout);
  boost::system::error_code ec;
  if (auto* tls = stream.tls(); tls && net::buffer_size(rest) == 0) {
    std::tie(ec) = co_await tls->async_flush(use_nothrow);  // write_now took it all; records remain to send
  } else {
    std::tie(ec, std::ignore) =
        co_await stream.visit_socket([&](auto& s) { return net::async_write(s, rest, use_nothrow); });
  }
  stream.clear_deadline();
  co_return !ec;
}

// The client's answer when no attempt produced a response: 504 after a timeout, 502 otherwise.
net::awaitable<HttpSession::Next> HttpSession::answer_failure(const Attempt& a, RequestLog& log) {
  auto& stats = worker_.stats();
  if (a.no_descriptors) {
    stats.requests_overloaded.add();
    co_return co_await send_error(http::status::service_unavailable, a.failure, Next::keep_alive, log,
                                  kOverloadRetryAfter);
  }
  if (a.outcome == routing::Outcome::timeout) {
    stats.upstream_timeouts.add();
    co_return co_await send_error(http::status::gateway_timeout, a.failure, Next::close, log);
  }
  if (a.outcome != routing::Outcome::connect_failure) stats.upstream_resets.add();
  const auto next = a.body_streamed || !parser_->is_done() ? Next::close : Next::keep_alive;
  co_return co_await send_error(http::status::bad_gateway, a.failure, next, log);
}

}  // namespace sluice::proxy
