// Step 4 of a request's way (http_session.cpp lists them all): the endpoint's response back to the client,
// its body streamed piece by piece through the relay buffer with backpressure both ways; or, when the
// endpoint switched protocols (101), the connection handed to a Tunnel (tunnel.hpp) until either side ends it.
#include <cassert>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
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
                                                              RequestLog& log) {
  const auto& req = parser_->get();
  const auto& head = rp.get();
  auto& stats = worker_.stats();
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
  const auto count_status = [&] { stats.responses_by_class[status / 100 < 6 ? status / 100 : 5].add(); };
  log.status = status;
  upstream_ok = true;
  if (no_body) {
    const FramedPiece piece(head_, nullptr, 0, false, true);
    std::size_t written = 0;
    bool sent = false;
    if (!write_now(stream_, piece, false, written, sent)) sent = co_await write_rest(stream_, piece, written, idle);
    count_status();
    if (!sent) co_return Next::close;  // the client left; the endpoint did nothing wrong
  } else {
    // The head goes out with the first piece of the body: one write (and one packet) for a small response.
    bool head_sent = false;
    auto& in_body = rp.get().body();
    if (!body_buf_) body_buf_ = std::make_unique<char[]>(kBodyBuffer);
    for (;;) {
      in_body.data = body_buf_.get();
      in_body.size = kBodyBuffer;
      boost::system::error_code rec;
      if (!parse_buffered(rp, up.buffer, rec)) {
        up.stream.set_deadline_after(worker_.settings().timeouts.response);
        std::tie(rec, std::ignore) = co_await up.stream.visit_socket(
            [&](auto& s) { return http::async_read_some(s, up.buffer, rp, use_nothrow); });
        up.stream.clear_deadline();
        if (rec == http::error::need_buffer) rec = {};
      }
      if (rec) {
        log::debug("upstream " + up.pool_key + " failed mid-response: " + rec.message());
        upstream_ok = false;
        if (!head_sent) {
          co_return co_await send_error(http::status::bad_gateway,
                                        "upstream " + up.pool_key + " failed before its response body: " +
                                            rec.message(),
                                        Next::close, log);
        }
        // The response is cut: the client must see it cut too, not a shorter message that looks whole.
        co_return Next::close;
      }
      const std::size_t got = kBodyBuffer - in_body.size;
      const FramedPiece piece(head_sent ? std::string_view{} : std::string_view(head_), body_buf_.get(), got, chunked,
                              rp.is_done());
      std::size_t written = 0;
      bool sent = false;
      if (!write_now(stream_, piece, false, written, sent)) sent = co_await write_rest(stream_, piece, written, idle);
      if (!head_sent) count_status();
      head_sent = true;
      if (!sent) co_return Next::close;
      log.bytes_sent += got;
      stats.bytes_sent.add(got);
      if (rp.is_done()) break;
    }
  }
  log.bytes_received = request_body_bytes_;
  if (auto* access = worker_.settings().access_log) access->write(log);
  co_return keep ? Next::keep_alive : Next::close;
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
