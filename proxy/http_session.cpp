// One downstream HTTP/1.1 connection, step 1 of a request's way: the connection's life (run), reading
// each request head under its deadlines and limits, handing the connection to HTTP/2 when the client
// speaks it, drain and abort. Then, in the order a request takes:
//   http_session_request.cpp  route it: checks, limits, upgrade slots, local answers (send_error)
//   http_session_forward.cpp  the attempts: pick, connect or reuse, send the request, read the response head
//   http_session_relay.cpp    relay the response (or, after a 101, the tunnel)
//   http_session_h2.cpp       the same attempts to an HTTP/2 endpoint
#include "proxy/http_session.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/range/iterator_range_core.hpp>

#include "log/logger.hpp"
#include "proxy/access_log.hpp"
#include "proxy/buffered_parse.hpp"
#include "proxy/head_scanner.hpp"
#include "proxy/head_checks.hpp"
#include "proxy/http2_session.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
// RFC 9113 3.4: what a client with prior knowledge of HTTP/2 sends first.
constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

}  // namespace

HttpSession::HttpSession(Worker& worker, std::shared_ptr<const ListenerInfo> listener, Stream stream,
                         std::string client_ip)
    : worker_(worker), listener_(std::move(listener)), stream_(std::move(stream)), client_ip_(std::move(client_ip)) {
  registration_ = worker_.register_session(this);
  boost::system::error_code ignored;
  stream_.transport().socket().non_blocking(true, ignored);  // for write_framed's synchronous first try
  // EPOLLRDHUP too (one epoll_ctl a connection), so that mark_drained after a request that came with the
  // client's FIN leaves the next read to see the end, instead of holding the connection until idle.
  prepare_drained_reads(stream_.transport().socket());
  worker_.stats().downstream_connections.add();
  worker_.stats().downstream_active_connections.inc();
}

HttpSession::~HttpSession() {
  worker_.unregister_session(registration_);
  worker_.stats().downstream_active_connections.dec();
}
void HttpSession::on_drain() {
  close_after_ = true;
  if (h2_) return h2_->drain();
  if (state_ == State::idle) {
    // Waiting for the next request: nothing is lost by closing now.
    boost::system::error_code ignored;
    stream_.transport().socket().close(ignored);
  }
}

void HttpSession::abort() {
  aborted_ = true;
  if (tunnel_) tunnel_->go_away();
  if (h2_) h2_->abort();
  close_after_ = true;
  boost::system::error_code ignored;
  stream_.transport().socket().close(ignored);
  if (upstream_) upstream_->stream.transport().socket().close(ignored);
}

net::awaitable<void> HttpSession::run() {
  auto self = shared_from_this();
  if (auto* tls = stream_.tls()) {
    stream_.expires_after(worker_.settings().timeouts.request_header);
    auto [ec] = co_await tls->async_handshake(ssl::stream_base::server, use_nothrow);
    if (ec) {
      log::debug("tls handshake from " + client_ip_ + " failed: " + ec.message());
      co_return;
    }
    if (alpn_is_h2(tls->native_handle())) {
      co_await run_http2();
      co_return co_await close();
    }
  }
  for (;;) {
    if (!co_await read_head()) {
      if (h2_preface_) co_await run_http2();
      break;
    }
    state_ = State::busy;
    const auto next = co_await handle_request();
    if (next == Next::close || close_after_) break;
    first_request_ = false;
  }
  co_await close();
}

// Reads one request head: the first bytes under the idle deadline (the connection may sit idle between
// requests), the rest under the request-head deadline counted from the first byte (slowloris).
net::awaitable<bool> HttpSession::read_head() {
  const auto& settings = worker_.settings();
  HeadScanner scanner(settings.limits.max_request_header_bytes, settings.limits.max_request_headers);
  // The previous request's parser must not answer for this one: a local reply before the new parser exists
  // takes its version and keep-alive from the raw request line (client_version_), not from the old request.
  parser_.reset();
  client_version_ = 11;
  state_ = buffer_.size() == 0 ? State::idle : State::reading_head;
  if (state_ == State::idle && close_after_) co_return false;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  if (buffer_.size() != 0 || first_request_) {
    deadline = std::chrono::steady_clock::now() + settings.timeouts.request_header;
  }
  for (;;) {
    const auto view = std::string_view(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    // h2c with prior knowledge: the preface opens the connection instead of a request head.
    if (first_request_ && view.size() >= kH2Preface.size() && view.starts_with(kH2Preface)) {
      h2_preface_ = true;
      co_return false;
    }
    const bool maybe_preface = first_request_ && !view.empty() && view.size() < kH2Preface.size() &&
                               kH2Preface.starts_with(view);
    const auto scan = maybe_preface ? HeadScan::need_more : scanner.scan(view);
    if (const auto eol = view.find("\r\n"); eol != std::string_view::npos) {
      // The request line is in: an HTTP/1.0 client gets its answers, errors included, as HTTP/1.0 with a close.
      if (request_line_version(view.substr(0, eol)) == LineVersion::v10) client_version_ = 10;
    }
    if (scan == HeadScan::complete) break;
    if (scan != HeadScan::need_more) {
      RequestLog log;
      log.client = client_ip_;
      auto refusal = refusal_of(scan);
      worker_.stats().bad_requests.add();
      co_await send_error(refusal.status, refusal.reason, Next::close, log);
      co_return false;
    }
    // Part of a head is in: its deadline must leave the socket open for a 408, and Beast's stream closes the
    // socket when its deadline passes. So the deadline is a timer of this read's own that cancels the read
    // instead. (Rare: a head split across reads. Waiting for a first byte keeps the stream's deadline, and a
    // connection idle at it is closed without an answer, as nginx does.)
    std::optional<net::steady_timer> head_timer;
    std::shared_ptr<bool> head_read_pending;  // made only for a head split across reads
    bool head_timed_out = false;
    if (state_ == State::reading_head && deadline) {
      stream_.expires_never();  // the TLS handshake's, when this is the first request
      stream_.clear_deadline();
      head_timer.emplace(stream_.transport().get_executor(), *deadline);
      head_read_pending = std::make_shared<bool>(true);
      head_timer->async_wait([self = shared_from_this(), pending = head_read_pending, &head_timed_out](
                                 boost::system::error_code ec) {
        // Only while the read is still pending: a handler queued as the read completed must not cancel a
        // later operation (the frame's `head_timed_out` is alive while *pending is true).
        if (ec || !*pending) return;
        head_timed_out = true;
        boost::system::error_code ignored;
        self->stream_.transport().socket().cancel(ignored);
      });
    } else if (deadline) {
      stream_.set_deadline(*deadline);
    } else {
      stream_.set_deadline_after(settings.timeouts.idle);
    }
    auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), use_nothrow);
    stream_.clear_deadline();
    if (head_read_pending) *head_read_pending = false;
    if (head_timer) head_timer->cancel();
    if (ec) {
      if ((ec == beast::error::timeout || stream_.deadline_passed() || head_timed_out) &&
          state_ == State::reading_head) {
        RequestLog log;
        log.client = client_ip_;
        log.error = "request head timeout";
        co_await send_error(http::status::request_timeout, log.error, Next::close, log);
      }
      co_return false;
    }
    buffer_.commit(n);
    // Read dry: the body's next piece or the next request will come with a readiness event.
    if (n < kReadChunk) stream_.mark_drained();
    if (!deadline) deadline = std::chrono::steady_clock::now() + settings.timeouts.request_header;
    state_ = State::reading_head;
  }

  // RFC 9112 2.3: "HTTP/1.x" with x > 1 is taken as HTTP/1.1, another major version gets 505.
  if (auto refusal = normalize_request_version(static_cast<char*>(buffer_.data().data()), buffer_.size())) {
    RequestLog log;
    log.client = client_ip_;
    log.error = refusal->reason;
    worker_.stats().bad_requests.add();
    co_await send_error(refusal->status, log.error, Next::close, log);
    co_return false;
  }

  // The raw head is sane; let Beast's parser take it.
  parser_.emplace();
  prepare_request_parser(*parser_, settings.limits.max_request_header_bytes);
  boost::system::error_code ec;
  const auto used = parser_->put(buffer_.data(), ec);
  buffer_.consume(used);
  if (ec || !parser_->is_header_done()) {
    RequestLog log;
    log.client = client_ip_;
    auto refusal = refusal_of_parse(ec);
    worker_.stats().bad_requests.add();
    co_await send_error(refusal.status, refusal.reason, Next::close, log);
    co_return false;
  }
  co_return true;
}

net::awaitable<void> HttpSession::close() {
  boost::system::error_code ignored;
  if (auto* tls = stream_.tls()) {
    stream_.expires_after(std::chrono::seconds(1));
    co_await tls->async_shutdown(use_nothrow);
  }
  stream_.transport().socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.transport().close();
}

net::awaitable<void> HttpSession::run_http2() {
  state_ = State::busy;  // drain goes through the HTTP/2 session (GOAWAY), not a close
  h2_ = std::make_shared<Http2Session>(worker_, listener_, stream_, buffer_, client_ip_);
  if (close_after_ || worker_.draining()) h2_->drain();
  co_await h2_->run();
  h2_.reset();
}

}  // namespace sluice::proxy
