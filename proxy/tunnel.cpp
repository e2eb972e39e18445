#include "proxy/tunnel.hpp"

#include <algorithm>

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include "proxy/stats.hpp"

namespace sluice::proxy {

using namespace net::experimental::awaitable_operators;

Tunnel::Tunnel(Stream& client, beast::flat_buffer& client_early, Stream& upstream, beast::flat_buffer& upstream_early,
               TunnelLimits limits, WorkerStats& stats)
    : client_(client),
      client_early_(client_early),
      upstream_(upstream),
      upstream_early_(upstream_early),
      limits_(limits),
      stats_(stats) {}

net::awaitable<TunnelResult> Tunnel::run() {
  // From here on only the tunnel's own clocks apply, not the request's.
  client_.transport().expires_never();
  upstream_.transport().expires_never();
  co_await ((pump(client_, client_early_, upstream_, true) && pump(upstream_, upstream_early_, client_, false)) ||
            watch());
  result_.duration = std::chrono::steady_clock::now() - started_;
  if (result_.closed_by.empty()) result_.closed_by = "proxy";
  co_return result_;
}

void Tunnel::close(std::string_view why) {
  note_end(why);
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  client_.transport().socket().close(ignored);
  upstream_.transport().socket().close(ignored);
}

void Tunnel::note_end(std::string_view who) {
  if (result_.closed_by.empty()) result_.closed_by = who;
}

net::awaitable<void> Tunnel::pump(Stream& from, beast::flat_buffer& early, Stream& to, bool up) {
  auto& bytes = up ? result_.bytes_up : result_.bytes_down;
  auto& counter = up ? stats_.tunnel_bytes_up : stats_.tunnel_bytes_down;
  const std::string_view side = up ? "client" : "upstream";
  // What the sender put behind its head goes first.
  if (early.size() != 0) {
    auto [ec, n] = co_await to.visit([&](auto& s) { return net::async_write(s, early.data(), use_nothrow); });
    if (ec) {
      close(up ? "upstream" : "client");
      co_return;
    }
    early.consume(n);
    bytes += n;
    counter.add(n);
  }
  auto buffer = std::make_unique<char[]>(kBuffer);
  for (;;) {
    auto [rec, n] = co_await from.visit(
        [&](auto& s) { return s.async_read_some(net::buffer(buffer.get(), kBuffer), use_nothrow); });
    if (rec) {
      if (closed_) co_return;
      note_end(side);
      if (rec == net::error::eof && !to.is_tls() && !from.is_tls()) {
        // A half close: the other side may still answer (a WebSocket close handshake does).
        boost::system::error_code ignored;
        to.transport().socket().shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
      close(side);
      co_return;
    }
    last_activity_ = std::chrono::steady_clock::now();
    auto [wec, written] = co_await to.visit(
        [&](auto& s) { return net::async_write(s, net::buffer(buffer.get(), n), use_nothrow); });
    if (wec) {
      if (!closed_) close(up ? "upstream" : "client");
      co_return;
    }
    bytes += n;
    counter.add(n);
  }
}

// The idle timeout and the lifetime: wakes when the next of them could be due.
net::awaitable<void> Tunnel::watch() {
  net::steady_timer timer(co_await net::this_coro::executor);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_activity_ >= limits_.idle_timeout) {
      close("idle");
      co_return;
    }
    if (limits_.max_lifetime.count() > 0 && now - started_ >= limits_.max_lifetime) {
      close("lifetime");
      co_return;
    }
    auto next = last_activity_ + limits_.idle_timeout;
    if (limits_.max_lifetime.count() > 0) next = std::min(next, started_ + limits_.max_lifetime);
    timer.expires_at(next);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec) co_return;  // the pumps ended first
  }
}

}  // namespace sluice::proxy
