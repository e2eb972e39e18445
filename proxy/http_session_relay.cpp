// Step 4 of a request's way (http_session.cpp lists them all): the endpoint's response back to the client,
// its body streamed piece by piece through the relay buffer with backpressure both ways; or, when the
// endpoint switched protocols (101), the connection handed to a Tunnel (tunnel.hpp) until either side ends it.
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
#include "proxy/h2_upstream.hpp"
#include "proxy/http_session.hpp"
#include "proxy/http_session_h2.hpp"
#include "proxy/reported_pick.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/upstream_connect.hpp"
#include "proxy/worker.hpp"
#include "routing/snapshot.hpp"

namespace sluice::proxy {

net::awaitable<HttpSession::Next> HttpSession::relay_response(UpstreamConnection& up, response_parser& rp,
                                                              const routing::PickResult& picked, bool& upstream_ok,
                                                              bool& complete, RequestLog& log) {
  complete = false;
  const auto& req = parser_->get();
  const auto& head = rp.get();
  const unsigned status = head.result_int();

  const bool no_body = req.method() == http::verb::head || status == 204 || status == 304 || rp.is_done();
  // The parsers' own flags, not the messages' keep_alive() and has_content_length(): the same answers (both
  // heads are as parsed here; only Host is rewritten) without a lookup each in the fields' name index.
  bool keep = parser_->keep_alive() && !close_after_ && !worker_.draining();
  bool chunked = false;
  if (!no_body && !rp.content_length()) {
    // Unknown length (chunked or until close): re-frame as chunked for HTTP/1.1; HTTP/1.0 ends with close.
    if (req.version() == 11) {
      chunked = true;
    } else {
      keep = false;
    }
  }
  write_response_head(head,
                      ResponseHeadParts{req.version() == 10 ? 10u : 11u, status, head.reason(), picked.set_cookie,
                                        chunked, keep, {}},
                      head_);

  const auto idle = worker_.settings().timeouts.idle;
  log.status = status;
  upstream_ok = true;
  const auto length = no_body ? boost::optional<std::uint64_t>(0) : rp.content_length_remaining();
  if (length && *length <= up.buffer.size()) {
    // No body, or all of it came with the head (a small response): one write, from where it is, with no
    // relay buffer and no coroutine of its own.
    const auto size = static_cast<std::size_t>(*length);
    const FramedPiece piece(head_, static_cast<const char*>(up.buffer.data().data()), size, false, true);
    std::size_t written = 0;
    bool sent = false;
    if (!write_now(stream_, piece, false, written, sent)) sent = co_await write_rest(stream_, piece, written, idle);
    up.buffer.consume(size);
    count_response(status);
    if (!sent) co_return Next::close;  // the client left; the endpoint did nothing wrong
    log.bytes_sent += size;
    worker_.stats().bytes_sent.add(size);
  } else {
    if (!body_buf_) body_buf_ = std::make_unique<char[]>(kBodyBuffer);
    bool head_sent = false;
    // A body of known length from a plain TCP endpoint skips Beast's parser (relay_sized_body says why);
    // chunked or until-close bodies, and TLS endpoints, go through it.
    boost::system::error_code ec;
    const BodyEnd end = length && !up.stream.is_tls()
                            ? co_await relay_sized_body(up, *length, status, head_sent, ec, log)
                            : co_await relay_parsed_body(up, rp, chunked, status, head_sent, ec, log);
    if (end == BodyEnd::upstream_failed) {
      log::debug("upstream " + up.pool_key + " failed mid-response: " + ec.message());
      upstream_ok = false;
      if (!head_sent) {
        co_return co_await send_error(http::status::bad_gateway,
                                      "upstream " + up.pool_key + " failed before its response body: " + ec.message(),
                                      Next::close, log);
      }
      // The response is cut: the client must see it cut too, not a shorter message that looks whole.
      co_return Next::close;
    }
    if (end == BodyEnd::downstream_failed) co_return Next::close;
  }
  complete = true;
  log.bytes_received = request_body_bytes_;
  if (auto* access = worker_.settings().access_log) access->write(log);
  co_return keep ? Next::keep_alive : Next::close;
}

void HttpSession::count_response(unsigned status) {
  worker_.stats().responses_by_class[status / 100 < 6 ? status / 100 : 5].add();
}

net::awaitable<HttpSession::BodyEnd> HttpSession::relay_parsed_body(UpstreamConnection& up, response_parser& rp,
                                                                    bool chunked, unsigned status, bool& head_sent,
                                                                    boost::system::error_code& ec, RequestLog& log) {
  // The head goes out with the first piece of the body: one write (and one packet) for a small response.
  auto& stats = worker_.stats();
  auto& in_body = rp.get().body();
  const auto idle = worker_.settings().timeouts.idle;
  for (;;) {
    in_body.data = body_buf_.get();
    in_body.size = kBodyBuffer;
    if (!parse_buffered(rp, up.buffer, ec)) {
      up.stream.set_deadline_after(worker_.settings().timeouts.response);
      std::tie(ec, std::ignore) = co_await up.stream.visit_socket(
          [&](auto& s) { return http::async_read_some(s, up.buffer, rp, use_nothrow); });
      up.stream.clear_deadline();
      if (ec == http::error::need_buffer) ec = {};
    }
    if (ec) co_return BodyEnd::upstream_failed;
    const std::size_t got = kBodyBuffer - in_body.size;
    const FramedPiece piece(head_sent ? std::string_view{} : std::string_view(head_), body_buf_.get(), got, chunked,
                            rp.is_done());
    std::size_t written = 0;
    bool sent = false;
    if (!write_now(stream_, piece, false, written, sent)) sent = co_await write_rest(stream_, piece, written, idle);
    if (!head_sent) count_response(status);
    head_sent = true;
    if (!sent) co_return BodyEnd::downstream_failed;
    log.bytes_sent += got;
    stats.bytes_sent.add(got);
    if (rp.is_done()) co_return BodyEnd::done;
  }
}

// Why not the parser: Beast reads into the connection's buffer (16 KiB at a time, the size that takes a
// response head in one read) and copies from there into the relay buffer. Here each recv() goes straight
// into the relay buffer and takes as much as the buffer and the rest of the body allow, so a 1 MiB body
// costs 16 reads of 64 KiB instead of 64 reads and 64 copies of 16 KiB, and as many writes.
//
// Every piece but the last goes with MSG_MORE, as HAProxy sends a body it knows goes on: the kernel then
// sends full segments instead of one short packet per write, and the client is woken once per segment
// rather than once per write (waking the reader was the largest single cost in a profile of 1 MiB
// responses). Bytes held back that way are pushed (TCP_NODELAY set again, which pushes what is pending)
// before any wait for the endpoint, so a slow endpoint never holds back what was already read from it.
//
// Reads are tried at once (the endpoint is usually ahead), and only a read that finds the socket empty
// waits, through the reactor, without a second recv() first (mark_drained: the read that found it empty
// took no FIN, since it returned EAGAIN, so any later byte or FIN raises a new readiness event).
net::awaitable<HttpSession::BodyEnd> HttpSession::relay_sized_body(UpstreamConnection& up, std::uint64_t length,
                                                                   unsigned status, bool& head_sent,
                                                                   boost::system::error_code& ec, RequestLog& log) {
  auto& stats = worker_.stats();
  const auto idle = worker_.settings().timeouts.idle;
  auto& socket = up.stream.transport().socket();
  assert(!socket.is_open() || socket.non_blocking());  // the reads below must not block the worker
  bool held_back = false;  // a write with MSG_MORE may have left a short segment unsent
  std::uint64_t left = length;
  while (left != 0) {
    const char* data = body_buf_.get();
    std::size_t got = 0;
    if (up.buffer.size() != 0) {
      // Body bytes that came in with the head: written from where they are.
      got = static_cast<std::size_t>(std::min<std::uint64_t>(up.buffer.size(), left));
      data = static_cast<const char*>(up.buffer.data().data());
    } else {
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, kBodyBuffer));
      got = socket.read_some(net::buffer(body_buf_.get(), want), ec);
      if (ec == net::error::would_block || ec == net::error::try_again) {
        if (held_back) {
          // Push what MSG_MORE held back before waiting (see above); a failed push shows on the next write.
          boost::system::error_code ignored;
          stream_.transport().socket().set_option(tcp::no_delay(true), ignored);
          held_back = false;
        }
        mark_drained(socket);
        up.stream.set_deadline_after(worker_.settings().timeouts.response);
        std::tie(ec, got) = co_await socket.async_read_some(net::buffer(body_buf_.get(), want), use_nothrow);
        up.stream.clear_deadline();
        if (ec && up.stream.deadline_passed()) ec = beast::error::timeout;
      }
      if (ec == net::error::eof) ec = http::error::partial_message;  // as Beast's parser says it
      if (ec) co_return BodyEnd::upstream_failed;
    }
    left -= got;
    const bool more = left != 0;
    const FramedPiece piece(head_sent ? std::string_view{} : std::string_view(head_), data, got, false, !more);
    std::size_t written = 0;
    bool sent = false;
    // write_rest's own writes go without MSG_MORE: they push everything.
    held_back = more;
    if (!write_now(stream_, piece, false, written, sent, more)) {
      sent = co_await write_rest(stream_, piece, written, idle);
      held_back = false;
    }
    if (data != body_buf_.get()) up.buffer.consume(got);
    if (!head_sent) count_response(status);
    head_sent = true;
    if (!sent) co_return BodyEnd::downstream_failed;
    log.bytes_sent += got;
    stats.bytes_sent.add(got);
  }
  co_return BodyEnd::done;
}

net::awaitable<HttpSession::Next> HttpSession::run_tunnel(Attempt& a, const routing::PickResult& picked,
                                                          RequestLog& log) {
  auto& stats = worker_.stats();
  const auto& res = a.response->get();
  auto protocol = res.find(http::field::upgrade);
  write_response_head(res,
                      ResponseHeadParts{11, 101, res.reason(), picked.set_cookie, false, true,
                                        protocol == res.end() ? std::string_view(upgrade_)
                                                              : std::string_view(protocol->value())},
                      head_);
  if (!co_await write_framed(stream_, head_, 0, false, true, worker_.settings().timeouts.idle)) co_return Next::close;
  stats.responses_by_class[1].add();
  stats.upgrades_switched.add();
  stats.tunnels_active.inc();
  const auto& limits = picked.service->tunnel;
  Tunnel tunnel(stream_, buffer_, a.up->stream, a.up->buffer, TunnelLimits{limits.idle_timeout, limits.max_lifetime},
                stats, beast::iequals(upgrade_, "websocket"));
  tunnel_ = &tunnel;
  const TunnelResult r = co_await tunnel.run();
  tunnel_ = nullptr;
  stats.tunnels_active.dec();
  stats.tunnels_closed.add();
  stats.tunnel_seconds.add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(r.duration).count()));
  log.status = 101;
  log.bytes_received = r.bytes_up;
  log.bytes_sent = r.bytes_down;
  log.tunnel_closed_by = r.closed_by;
  if (auto* access = worker_.settings().access_log) access->write(log);
  log::debug("tunnel " + log.authority + log.path + " to " + log.upstream + " closed by " + std::string(r.closed_by));
  co_return Next::close;
}

}  // namespace sluice::proxy
