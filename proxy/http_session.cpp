// Downstream side of a session: heads, limits, routing, local answers.
// The upstream side (connect, send, relay the response) is in http_session_forward.cpp.
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

// The Upgrade token of an HTTP/1.1 request whose Connection names "upgrade", else empty (RFC 9110 7.8).
std::string_view upgrade_token(const http::request<http::buffer_body>& req) {
  if (req.version() != 11) return {};
  auto upgrade = req.find(http::field::upgrade);
  if (upgrade == req.end() || upgrade->value().empty()) return {};
  for (const auto& connection : boost::make_iterator_range(req.equal_range(http::field::connection))) {
    for (auto token : http::token_list{connection.value()}) {
      if (beast::iequals(token, "upgrade")) return upgrade->value();
    }
  }
  return {};
}

// One of the proxy's tunnel slots (limits.max_tunnels, all workers), held while its request may become a
// tunnel.
class TunnelSlot {
 public:
  explicit TunnelSlot(std::atomic<std::int64_t>* count) : count_(count) {}
  ~TunnelSlot() {
    if (held_) count_->fetch_sub(1, std::memory_order_relaxed);
  }
  TunnelSlot(const TunnelSlot&) = delete;
  TunnelSlot& operator=(const TunnelSlot&) = delete;

  bool take(std::int64_t max) {
    if (count_->fetch_add(1, std::memory_order_relaxed) >= max) {
      count_->fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    held_ = true;
    return true;
  }

 private:
  std::atomic<std::int64_t>* count_;
  bool held_ = false;
};

}  // namespace

HttpSession::HttpSession(Worker& worker, std::shared_ptr<const ListenerInfo> listener, Stream stream,
                         std::string client_ip)
    : worker_(worker), listener_(std::move(listener)), stream_(std::move(stream)), client_ip_(std::move(client_ip)) {
  registration_ = worker_.register_session(this);
  boost::system::error_code ignored;
  stream_.transport().socket().non_blocking(true, ignored);  // for write_framed's synchronous first try
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
    stream_.transport().expires_after(worker_.settings().timeouts.request_header);
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
    if (scan == HeadScan::complete) break;
    if (scan != HeadScan::need_more) {
      RequestLog log;
      log.client = client_ip_;
      auto refusal = refusal_of(scan);
      worker_.stats().bad_requests.add();
      co_await send_error(refusal.status, refusal.reason, Next::close, log);
      co_return false;
    }
    if (deadline) {
      stream_.transport().expires_at(*deadline);
    } else {
      stream_.transport().expires_after(settings.timeouts.idle);
    }
    auto [ec, n] = co_await stream_.visit(
        [&](auto& s) { return s.async_read_some(buffer_.prepare(kReadChunk), use_nothrow); });
    if (ec) {
      if (ec == beast::error::timeout && state_ == State::reading_head) {
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

net::awaitable<HttpSession::Next> HttpSession::handle_request() {
  auto& req = parser_->get();
  auto& stats = worker_.stats();
  stats.requests.add();
  stats.active_requests.inc();
  struct ActiveGuard {
    WorkerStats& s;
    ~ActiveGuard() { s.active_requests.dec(); }
  } guard{stats};

  request_body_bytes_ = 0;
  RequestLog log;
  log.method = std::string(req.method_string());
  log.path = std::string(req.target());
  log.client = client_ip_;
  log.src_cluster = worker_.settings().local_cluster;
  if (auto refusal = check_request_head(req, log.authority)) {
    stats.bad_requests.add();
    co_return co_await send_error(refusal->status, refusal->reason, Next::close, log);
  }
  log.path = std::string(req.target());  // origin form, after an absolute-form target's rewrite

  // An upgrade (WebSocket or any other token) is routed and failed over like any request; it holds one of
  // the proxy's tunnel slots from here until its tunnel ends, or until the answer is not a 101.
  upgrade_ = upgrade_token(req);
  TunnelSlot slot(upgrade_.empty() ? nullptr : worker_.settings().tunnels.get());
  if (!upgrade_.empty()) {
    if (worker_.draining() || close_after_ ||
        !slot.take(worker_.settings().limits.max_tunnels)) {
      stats.upgrades_refused.add();
      co_return co_await send_error(http::status::service_unavailable,
                                    worker_.draining() ? "draining: no new upgraded connections"
                                                       : "too many upgraded connections (limits.max_tunnels)",
                                    Next::close, log);
    }
  }

  routing::AttemptState attempt;
  auto picked = worker_.picker().pick(request_view(log.authority), attempt);
  log.service = picked.service_id;
  if (picked.status == routing::PickStatus::no_route) {
    stats.no_route.add();
    co_return co_await send_error(http::status::not_found, "no route: " + picked.reason, Next::keep_alive, log);
  }
  if (picked.status != routing::PickStatus::ok) {
    stats.no_endpoint.add();
    co_return co_await send_error(http::status::service_unavailable, "no endpoint: " + picked.reason,
                                  Next::keep_alive, log);
  }
  co_return co_await forward(std::move(picked), attempt, log);
}

// Reads the next piece of the request body into body_buf_. `got` is the number of bytes read.
// Returns false on a read error or a malformed body (e.g. a bad chunk size).
net::awaitable<bool> HttpSession::read_body_piece(std::size_t& got) {
  if (!body_buf_) body_buf_ = std::make_unique<char[]>(kBodyBuffer);
  auto& body = parser_->get().body();
  body.data = body_buf_.get();
  body.size = kBodyBuffer;
  boost::system::error_code ec;
  if (!parse_buffered(*parser_, buffer_, ec)) {
    stream_.transport().expires_after(worker_.settings().timeouts.idle);
    std::tie(ec, std::ignore) =
        co_await stream_.visit([&](auto& s) { return http::async_read_some(s, buffer_, *parser_, use_nothrow); });
    if (ec == http::error::need_buffer) ec = {};
  }
  got = kBodyBuffer - body.size;
  if (ec) {
    log::debug("request body from " + client_ip_ + ": " + ec.message());
    co_return false;
  }
  worker_.stats().bytes_received.add(got);
  request_body_bytes_ += got;
  co_return true;
}

net::awaitable<void> HttpSession::send_continue() {
  static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
  stream_.transport().expires_after(worker_.settings().timeouts.idle);
  co_await stream_.visit(
      [&](auto& s) { return net::async_write(s, net::buffer(kContinue.data(), kContinue.size()), use_nothrow); });
}

net::awaitable<HttpSession::Next> HttpSession::send_error(http::status status, std::string_view text, Next next,
                                                          RequestLog& log) {
  // A request whose body was not read cannot keep the connection: its bytes would be taken for the next head.
  if (parser_ && parser_->is_header_done() && !parser_->is_done()) next = Next::close;
  if (close_after_ || worker_.draining()) next = Next::close;
  http::response<http::string_body> res{status, 11};
  res.set(http::field::server, "sluice");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::string(text) + "\n";
  res.keep_alive(next == Next::keep_alive);
  res.prepare_payload();
  stream_.transport().expires_after(worker_.settings().timeouts.idle);
  co_await stream_.visit([&](auto& s) { return http::async_write(s, res, use_nothrow); });
  log.status = static_cast<unsigned>(status);
  log.error = std::string(text);
  log.bytes_received = request_body_bytes_;
  worker_.stats().responses_by_class[static_cast<unsigned>(status) / 100].add();
  if (auto* access = worker_.settings().access_log) access->write(log);
  if (!log.method.empty()) log::debug(log.method + " " + log.path + " -> " + std::to_string(log.status) + " " + log.error);
  co_return next;
}

net::awaitable<void> HttpSession::close() {
  boost::system::error_code ignored;
  if (auto* tls = stream_.tls()) {
    stream_.transport().expires_after(std::chrono::seconds(1));
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

routing::RequestView HttpSession::request_view(const std::string& authority) const {
  const auto& req = parser_->get();
  routing::RequestView view;
  view.listener = listener_->cfg.name;
  view.host = authority;
  view.target = req.target();
  view.method = req.method_string();
  view.client_address = client_ip_;
  view.header = [&req](std::string_view name) -> std::string_view {
    auto it = req.find(name);
    return it == req.end() ? std::string_view{} : std::string_view(it->value());
  };
  return view;
}

}  // namespace sluice::proxy
