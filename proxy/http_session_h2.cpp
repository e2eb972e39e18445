// An HTTP/1.1 request forwarded to an endpoint over HTTP/2 (proxy/h2_upstream.hpp): the request head
// translated (Host -> :authority, hop-by-hop fields dropped, `te: trailers` kept), the body streamed as it
// is read, then the response relayed as HTTP/1.1: chunked when its length is unknown, with the endpoint's
// trailers in the last chunk when the client said it takes them (`TE: trailers`).
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/range/iterator_range_core.hpp>

#include "log/logger.hpp"
#include "proxy/access_log.hpp"
#include "proxy/forward_headers.hpp"
#include "proxy/h2_upstream.hpp"
#include "proxy/http_session_h2.hpp"
#include "proxy/upstream_connect.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {
namespace {

using clock = std::chrono::steady_clock;

bool takes_trailers(const head_fields& req) {
  for (const auto& te : boost::make_iterator_range(req.equal_range(http::field::te))) {
    for (auto token : http::token_list{te.value()}) {
      if (beast::iequals(token, "trailers")) return true;
    }
  }
  return false;
}

}  // namespace


net::awaitable<void> HttpSession::h2_exchange(const routing::PickResult& picked, std::size_t first_piece,
                                              Attempt& a, std::unique_ptr<H2Exchange>& x) {
  const auto& settings = worker_.settings();
  const auto& req = parser_->get();
  x = std::make_unique<H2Exchange>(worker_.ioc());
  bool http1 = false;
  x->up = co_await worker_.h2_pool().get(worker_, picked, a.failure, http1);
  if (http1) {
    x->use_http1 = true;
    co_return;
  }
  if (aborted_) co_return;
  if (!x->up) {
    a.outcome = routing::Outcome::connect_failure;
    co_return;
  }
  // Fields past head_fields_ in a chunked request are its trailers (parsed with the body already read).
  const std::size_t head_count = parser_->chunked() ? head_fields_ : static_cast<std::size_t>(-1);
  const bool trailers_read =
      parser_->chunked() && static_cast<std::size_t>(std::distance(req.begin(), req.end())) > head_fields_;
  const bool with_body = !(parser_->is_done() && first_piece == 0) || trailers_read;
  const auto head = h2_upstream_request_fields(
      req, req.method_string(), x->up->key().find("|tls") != std::string::npos ? "https" : "http",
      picked.host_header, picked.upstream_target, client_ip_, stream_.is_tls(), head_count);
  H2Waker* waker = &x->waker;
  x->call = x->up->submit(head, with_body, [waker] { waker->notify(); });
  if (!x->call) {
    a.outcome = routing::Outcome::connect_failure;
    a.failure = "upstream " + x->up->key() + " takes no new stream";
    co_return;
  }
  auto& call = *x->call;
  // A chunked body's trailers: Beast adds them to the message's fields once the last chunk is parsed, after
  // the head's (head_fields_, counted before the body was read); they go on as a trailing HEADERS.
  const auto end_body = [&] {
    call.out_eof = parser_->is_done();
    if (call.out_eof && parser_->chunked()) call.trailers_out = h1_trailers_of(req, head_fields_);
  };
  if (with_body) {
    call.body_out.assign(body_buf_.get(), first_piece);
    end_body();
    x->up->resume(call);
  }
  // The rest of the body, as it is read, while the endpoint's stream takes it.
  while (!call.out_eof && !call.closed) {
    if (call.out_pending() >= H2Call::kOutHigh) {
      if (!co_await x->waker.wait(settings.timeouts.response)) break;
      continue;
    }
    std::size_t got = 0;
    if (!co_await read_body_piece(got)) {
      a.downstream_failed = true;
      co_return;
    }
    a.body_streamed = true;
    call.body_out.append(body_buf_.get(), got);
    end_body();
    x->up->resume(call);
  }
  // The response head.
  const auto deadline = clock::now() + settings.timeouts.response;
  while (!call.head_done && !call.closed && !aborted_) {
    const auto left = deadline - clock::now();
    if (left <= clock::duration::zero() || !co_await x->waker.wait(left)) break;
  }
  if (aborted_) co_return;
  if (call.head_done) {
    worker_.picker().responding(picked);
    a.status = call.status;
    a.outcome = routing::outcome_of_status(call.status);
    co_return;
  }
  if (!call.closed) {
    a.outcome = routing::Outcome::timeout;
    a.failure = "upstream response timeout from " + endpoint_text(picked);
  } else {
    a.outcome = call.refused ? routing::Outcome::connect_failure : routing::Outcome::reset;
    a.failure = "upstream " + x->up->key() +
                (call.refused ? " refused the stream (not processed)"
                              : " reset the stream before responding (" +
                                    std::string(nghttp2_http2_strerror(call.close_error)) + ")");
  }
}

net::awaitable<HttpSession::Next> HttpSession::relay_h2_response(H2Exchange& x, const routing::PickResult& picked,
                                                                 bool& upstream_ok, RequestLog& log) {
  const auto& req = parser_->get();
  auto& call = *x.call;
  auto& stats = worker_.stats();
  const auto idle = worker_.settings().timeouts.idle;
  const unsigned status = call.status;
  http::fields fields;
  h1_fields_of(call.headers, fields);
  const bool no_body = req.method() == http::verb::head || status == 204 || status == 304 ||
                       (call.end_stream && call.body_in.empty());
  bool keep = req.keep_alive() && !close_after_ && !worker_.draining();
  bool chunked = false;
  if (!no_body && fields.find(http::field::content_length) == fields.end()) {
    if (req.version() == 11) {
      chunked = true;
    } else {
      keep = false;
    }
  }
  write_response_head(fields, ResponseHeadParts{req.version() == 10 ? 10u : 11u, status, {}, picked.set_cookie,
                                                chunked, keep, {}},
                      head_);
  const bool trailers_ok = chunked && takes_trailers(req);
  log.status = status;
  upstream_ok = true;
  bool head_sent = false;
  std::string piece;
  for (;;) {
    if (!call.body_in.empty() || call.end_stream || !head_sent) {
      // What has arrived so far; more may come while this is written, and is taken the next time round.
      const bool ended = call.end_stream;
      piece.swap(call.body_in);
      call.body_in.clear();
      const bool last = ended && (!trailers_ok || call.trailers.empty());
      const FramedPiece framed(head_sent ? std::string_view{} : std::string_view(head_), piece.data(),
                               no_body ? 0 : piece.size(), chunked, last && !no_body);
      stream_.expires_after(idle);
      auto [ec, n] = co_await stream_.visit([&](auto& s) { return net::async_write(s, framed.buffers(), use_nothrow); });
      if (!head_sent) stats.responses_by_class[status / 100 < 6 ? status / 100 : 5].add();
      head_sent = true;
      if (ec) co_return Next::close;  // the client left; the endpoint did nothing wrong
      log.bytes_sent += piece.size();
      stats.bytes_sent.add(piece.size());
      x.up->consume(call, piece.size());
      piece.clear();
      if (no_body) break;
      if (ended) {
        if (!last) {
          // The last chunk with the endpoint's trailers (RFC 9112 7.1.2).
          std::string tail = "0\r\n";
          for (const auto& f : call.trailers) {
            if (f.name.empty() || f.name[0] == ':') continue;
            tail.append(f.name).append(": ").append(f.value).append("\r\n");
          }
          tail.append("\r\n");
          auto [tec, tn] = co_await stream_.visit(
              [&](auto& s) { return net::async_write(s, net::buffer(tail), use_nothrow); });
          if (tec) co_return Next::close;
        }
        break;
      }
      continue;
    }
    if (call.closed) {
      // Reset mid-response: the client must see the response cut, not a shorter one that looks whole.
      log::debug("upstream " + x.up->key() + " reset the stream mid-response (" +
                 nghttp2_http2_strerror(call.close_error) + ")");
      upstream_ok = false;
      co_return Next::close;
    }
    if (!co_await x.waker.wait(worker_.settings().timeouts.response)) {
      upstream_ok = false;
      co_return Next::close;
    }
  }
  log.bytes_received = request_body_bytes_;
  if (auto* access = worker_.settings().access_log) access->write(log);
  co_return keep ? Next::keep_alive : Next::close;
}

}  // namespace sluice::proxy
