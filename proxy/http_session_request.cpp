// Step 2 of a request's way (http_session.cpp lists them all): the head read, route it. The head's
// checks (head_checks.hpp), the in-flight limit, an upgrade's tunnel slot, the pick, then forward()
// (http_session_forward.cpp); and the answers the session writes itself (send_error, 100 Continue).
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

// The Upgrade token of an HTTP/1.1 request whose Connection names "upgrade", else empty (RFC 9110 7.8).
std::string_view upgrade_token(const request_head& req) {
  if (req.version() != 11) return {};
  auto upgrade = req.find(http::field::upgrade);
  if (upgrade == req.end() || upgrade->value().empty()) return {};
  // "h2c" asks to switch this connection to HTTP/2 (RFC 7540 3.2; RFC 9113 dropped it): served as HTTP/1.1
  // instead, as Envoy and nginx do (the server may ignore the offer). A tunnel would hand the connection to
  // one endpoint, outside routing; HTTP/2 over plain TCP is spoken here with prior knowledge.
  if (beast::iequals(upgrade->value(), "h2c")) return {};
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
  // The connection's log entry, its strings' capacity reused from request to request.
  RequestLog& log = log_;
  log.reset();
  log.method = req.method_string();
  log.path = req.target();
  log.client = client_ip_;
  log.src_cluster = worker_.settings().local_cluster;
  if (auto refusal = check_request_head(req, log.authority)) {
    stats.bad_requests.add();
    co_return co_await send_error(refusal->status, refusal->reason, Next::close, log);
  }
  log.path = req.target();  // origin form, after an absolute-form target's rewrite

  // limits.max_requests_per_worker: past it the request is refused before it costs an upstream connection
  // and relay buffers. This request is counted in active_requests already, hence `>`.
  if (stats.active_requests.get() > static_cast<std::int64_t>(worker_.settings().limits.max_requests_per_worker)) {
    stats.requests_overloaded.add();
    co_return co_await send_error(http::status::service_unavailable,
                                  "overloaded: too many requests in flight (limits.max_requests_per_worker)",
                                  Next::keep_alive, log, kOverloadRetryAfter);
  }

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

  // The pick goes into the connection's pick_ (Picker::pick_into: no allocation once its strings have grown).
  // Between requests it must not keep the routing snapshot (and what it holds) alive.
  struct ReleasePick {
    routing::PickResult& p;
    ~ReleasePick() {
      p.snapshot.reset();
      p.lb_policy.reset();
      p.route = nullptr;
      p.service = nullptr;
      p.endpoint = nullptr;
      p.service_id = {};
      p.cluster = {};
    }
  } release{pick_};
  routing::AttemptState attempt;
  worker_.picker().pick_into(request_view(log.authority), attempt, pick_);
  const auto& picked = pick_;
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
  co_return co_await forward(attempt, log);
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

// Reads the next piece of the request body into body_buf_. `got` is the number of bytes read.
// Returns false on a read error or a malformed body (e.g. a bad chunk size).
net::awaitable<bool> HttpSession::read_body_piece(std::size_t& got) {
  if (!body_buf_) body_buf_ = std::make_unique<char[]>(kBodyBuffer);
  auto& body = parser_->get().body();
  body.data = body_buf_.get();
  body.size = kBodyBuffer;
  boost::system::error_code ec;
  if (!parse_buffered(*parser_, buffer_, ec)) {
    stream_.set_deadline_after(worker_.settings().timeouts.idle);
    std::tie(ec, std::ignore) =
        co_await stream_.visit_socket([&](auto& s) { return http::async_read_some(s, buffer_, *parser_, use_nothrow); });
    stream_.clear_deadline();
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
  stream_.set_deadline_after(worker_.settings().timeouts.idle);
  co_await stream_.visit(
      [&](auto& s) { return net::async_write(s, net::buffer(kContinue.data(), kContinue.size()), use_nothrow); });
  stream_.clear_deadline();
}

net::awaitable<HttpSession::Next> HttpSession::send_error(http::status status, std::string_view text, Next next,
                                                          RequestLog& log, std::string_view retry_after) {
  const bool have_head = parser_ && parser_->is_header_done();
  // A request whose body was not read cannot keep the connection: its bytes would be taken for the next head.
  if (have_head && !parser_->is_done()) next = Next::close;
  // RFC 9112 9.3 and 9.6: `Connection: close`, or HTTP/1.0 without keep-alive, ends the connection after
  // this answer, as it does after a proxied one.
  if (have_head && !parser_->get().keep_alive()) next = Next::close;
  if (!have_head && client_version_ == 10) next = Next::close;  // a 1.0 head we could not parse: no keep-alive
  if (close_after_ || worker_.draining()) next = Next::close;
  // The status line says HTTP/1.0 to an HTTP/1.0 client (RFC 9110 6.2: a server answers with a version it
  // knows the client understands), as relayed answers do (proxy/forward_headers.hpp).
  const unsigned version = have_head ? (parser_->get().version() == 10 ? 10u : 11u) : client_version_;
  http::response<http::string_body> res{status, version};
  res.set(http::field::server, "sluice");
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::string(text) + "\n";
  // Written out both ways whatever the version, so a client never has to guess whether we close.
  res.set(http::field::connection, next == Next::keep_alive ? "keep-alive" : "close");
  if (next == Next::keep_alive && version == 11) res.erase(http::field::connection);  // 1.1's default
  if (!retry_after.empty()) res.set(http::field::retry_after, retry_after);
  res.prepare_payload();
  stream_.set_deadline_after(worker_.settings().timeouts.idle);
  co_await stream_.visit([&](auto& s) { return http::async_write(s, res, use_nothrow); });
  stream_.clear_deadline();
  log.status = static_cast<unsigned>(status);
  log.error = std::string(text);
  log.bytes_received = request_body_bytes_;
  worker_.stats().responses_by_class[static_cast<unsigned>(status) / 100].add();
  if (auto* access = worker_.settings().access_log) access->write(log);
  if (!log.method.empty()) log::debug(log.method + " " + log.path + " -> " + std::to_string(log.status) + " " + log.error);
  co_return next;
}

}  // namespace sluice::proxy
