#include "proxy/tunnel.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <tuple>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/write.hpp>

#include "proxy/drained_read.hpp"
#include "proxy/stats.hpp"

namespace sluice::proxy {

using namespace net::experimental::awaitable_operators;

namespace {

// Plain-TCP reads and writes go to the socket itself, not through beast::tcp_stream (whose timeouts the
// tunnel has switched off anyway), and without the cancellation slot the awaitable operators in run()
// would register and clear around every operation: the tunnel ends by closing its sockets (close()),
// which completes any pending operation, so per-operation cancellation buys nothing and costs a few
// percent of a busy tunnel's CPU (perf, WebSocket benchmark).
auto uncancellable() { return net::bind_cancellation_slot(net::cancellation_slot(), use_nothrow); }

}  // namespace

namespace {

// The length of a frame's header from its first two bytes (RFC 6455 section 5.2).
std::size_t frame_header_length(unsigned char second) {
  const unsigned len7 = second & 0x7f;
  return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((second & 0x80) ? 4 : 0);
}

// The payload length of a frame whose whole header is at `h`.
std::uint64_t frame_payload_length(const unsigned char* h) {
  const unsigned len7 = h[1] & 0x7f;
  if (len7 < 126) return len7;
  const std::size_t extended = len7 == 126 ? 2 : 8;
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < extended; ++i) length = (length << 8) | h[2 + i];
  return length;
}

}  // namespace

void WebSocketFrames::pass(const unsigned char* data, std::size_t size) {
  while (size > 0) {
    // The usual case, a whole header in the chunk: read in place, not byte by byte into header_.
    if (remaining_ == 0 && have_ == 0 && size >= 2) {
      const std::size_t header = frame_header_length(data[1]);
      if (size >= header) {
        remaining_ = frame_payload_length(data);
        data += header;
        size -= header;
        continue;
      }
    }
    if (remaining_ > 0) {
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, size));
      remaining_ -= take;
      data += take;
      size -= take;
      continue;
    }
    header_[have_++] = *data++;
    --size;
    if (have_ < 2 || have_ < frame_header_length(header_[1])) continue;
    remaining_ = frame_payload_length(header_);
    have_ = 0;
  }
}

Tunnel::Tunnel(Stream& client, beast::flat_buffer& client_early, Stream& upstream, beast::flat_buffer& upstream_early,
               TunnelLimits limits, WorkerStats& stats, bool websocket)
    : client_(client),
      client_early_(client_early),
      upstream_(upstream),
      upstream_early_(upstream_early),
      limits_(limits),
      stats_(stats),
      websocket_(websocket) {}

net::awaitable<TunnelResult> Tunnel::run() {
  // From here on only the tunnel's own clocks apply, not the request's.
  client_.expires_never();
  upstream_.expires_never();
  boost::system::error_code ignored;
  client_.transport().socket().non_blocking(true, ignored);  // the plain-TCP reads after a readiness wait
  upstream_.transport().socket().non_blocking(true, ignored);
  prepare_drained_reads(client_.transport().socket());
  prepare_drained_reads(upstream_.transport().socket());
  co_await ((pump(client_, client_early_, upstream_, true) && pump(upstream_, upstream_early_, client_, false)) ||
            watch());
  result_.duration = std::chrono::steady_clock::now() - started_;
  if (result_.closed_by.empty()) result_.closed_by = "proxy";
  co_return result_;
}

void Tunnel::go_away() {
  const bool framable = websocket_ && !closed_ && !client_.is_tls() && !upstream_.is_tls() && !writing_up_ &&
                        !writing_down_ && frames_up_.between_frames() && frames_down_.between_frames();
  if (framable) {
    // Close frames with status 1001 (RFC 6455 5.5.1, 7.4.1): unmasked to the client, masked to the server.
    static constexpr unsigned char kToClient[] = {0x88, 0x02, 0x03, 0xE9};
    const unsigned char key[4] = {0x5a, 0x17, 0xc3, 0x2e};
    const unsigned char to_server[] = {0x88, 0x82, key[0], key[1], key[2], key[3],
                                       static_cast<unsigned char>(0x03 ^ key[0]), static_cast<unsigned char>(0xE9 ^ key[1])};
    boost::system::error_code ignored;
    client_.transport().socket().write_some(net::buffer(kToClient), ignored);
    upstream_.transport().socket().write_some(net::buffer(to_server), ignored);
  }
  close("proxy");
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

// One direction of a plain-TCP tunnel once it has carried its first bytes, driven by completion handlers
// rather than a coroutine: a relayed chunk costs one read operation in the reactor (async_read_drained)
// and a send() straight into the non-blocking socket, and no coroutine resumption (callgrind, WebSocket
// benchmark: tests/bench/README.md). Only a chunk that does not fit waits for the receiver to drain.
// Lives in relay_plain()'s frame, which waits on `finished` until the direction ended.
class Tunnel::PlainRelay {
 public:
  PlainRelay(Tunnel& tunnel, tcp::socket& from, tcp::socket& to, char* buffer, bool up, net::steady_timer& finished)
      : tunnel_(tunnel), from_(from), to_(to), buffer_(buffer), up_(up), finished_(finished) {}

  // Passes the first `n` bytes of the buffer on, then reads and passes on until the direction ends.
  void relay(std::size_t n) {
    writing() = true;
    boost::system::error_code ec;
    const std::size_t sent = send_now(n, ec);
    if (!ec && sent < n) {
      net::async_write(to_, net::buffer(buffer_ + sent, n - sent),
                       [this, n](boost::system::error_code e, std::size_t) { on_written(e, n); });
      return;
    }
    on_written(ec, n);
  }

 private:
  bool& writing() { return up_ ? tunnel_.writing_up_ : tunnel_.writing_down_; }

  // What the non-blocking socket takes of the first `n` bytes now (0 when it is full). send() itself, not
  // write_some, whose error_code plumbing is most of the cost of a send that succeeds; MSG_NOSIGNAL as Asio.
  std::size_t send_now(std::size_t n, boost::system::error_code& ec) {
    ssize_t sent;
    do {
      sent = ::send(to_.native_handle(), buffer_, n, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    if (sent >= 0) return static_cast<std::size_t>(sent);
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
    }
    return 0;
  }

  void on_written(boost::system::error_code ec, std::size_t n) {
    writing() = false;
    if (ec) {
      if (!tunnel_.closed_) tunnel_.close(up_ ? "upstream" : "client");
      finished_.cancel();
      return;
    }
    tunnel_.passed(up_, buffer_, n);
    read();
  }

  void read() {
    async_read_drained(from_, net::buffer(buffer_, kBuffer),
                       [this](boost::system::error_code ec, std::size_t n) { on_read(ec, n); });
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (ec) {
      tunnel_.read_ended(ec, to_, up_, true);
      finished_.cancel();
      return;
    }
    relay(n);
  }

  Tunnel& tunnel_;
  tcp::socket& from_;
  tcp::socket& to_;
  char* buffer_;
  const bool up_;
  net::steady_timer& finished_;
};

void Tunnel::passed(bool up, const char* data, std::size_t n) {
  if (websocket_) (up ? frames_up_ : frames_down_).pass(reinterpret_cast<const unsigned char*>(data), n);
  (up ? result_.bytes_up : result_.bytes_down) += n;
  (up ? stats_.tunnel_bytes_up : stats_.tunnel_bytes_down).add(n);
}

void Tunnel::read_ended(boost::system::error_code ec, tcp::socket& to, bool up, bool half_close) {
  if (closed_) return;
  const std::string_view side = up ? "client" : "upstream";
  note_end(side);
  if (ec == net::error::eof && half_close) {
    // A half close: the other side may still answer (a WebSocket close handshake does).
    boost::system::error_code ignored;
    to.shutdown(tcp::socket::shutdown_send, ignored);
    return;
  }
  close(side);
}

net::awaitable<void> Tunnel::pump(Stream& from, beast::flat_buffer& early, Stream& to, bool up) {
  // What the sender put behind its head goes first.
  if (early.size() != 0) {
    auto& writing = up ? writing_up_ : writing_down_;
    writing = true;
    auto [ec, n] = co_await to.visit([&](auto& s) { return net::async_write(s, early.data(), use_nothrow); });
    writing = false;
    if (ec) {
      close(up ? "upstream" : "client");
      co_return;
    }
    // A flat_buffer's bytes are one contiguous buffer. (Not buffers_range_ref(early.data()) in a range-for:
    // the range would refer to the temporary early.data(), gone before the loop runs; ASan saw it.)
    const auto sent = early.data();
    passed(up, static_cast<const char*>(sent.data()), sent.size());
    early.consume(n);
  }
  // The HTTP head's read buffer is not needed any more: an idle tunnel should hold as little as it can.
  early.shrink_to_fit();
  if (!from.is_tls() && !to.is_tls()) {
    co_await relay_plain(from.transport().socket(), to.transport().socket(), up);
  } else {
    co_await relay_tls(from, to, up);
  }
}

net::awaitable<void> Tunnel::relay_plain(tcp::socket& from, tcp::socket& to, bool up) {
  // The relay buffer is taken only once the socket has something to read, so a tunnel that never carries
  // a byte holds none (a thousand idle WebSockets cost their sockets and little else). Only this first
  // wait is a readiness wait: Asio re-arms epoll (an epoll_ctl) for each one.
  std::unique_ptr<char[]> buffer;
  boost::system::error_code ec;
  std::size_t n = 0;
  for (;;) {
    std::tie(ec) = co_await from.async_wait(tcp::socket::wait_read, use_nothrow);
    if (ec) break;
    if (!buffer) buffer = std::make_unique<char[]>(kBuffer);
    n = from.read_some(net::buffer(buffer.get(), kBuffer), ec);
    if (ec != net::error::would_block && ec != net::error::try_again) break;
  }
  if (ec) {
    read_ended(ec, to, up, true);
    co_return;
  }
  // Not cancellable: the relay's handlers refer to this frame, which must outlive them. The tunnel ends
  // them by closing its sockets (close()), which completes whatever they wait for.
  net::steady_timer finished(co_await net::this_coro::executor, net::steady_timer::time_point::max());
  PlainRelay relay(*this, from, to, buffer.get(), up, finished);
  relay.relay(n);
  co_await finished.async_wait(uncancellable());
}

net::awaitable<void> Tunnel::relay_tls(Stream& from, Stream& to, bool up) {
  auto buffer = std::make_unique<char[]>(kBuffer);
  for (;;) {
    auto [rec, n] = co_await from.visit(
        [&](auto& s) { return s.async_read_some(net::buffer(buffer.get(), kBuffer), use_nothrow); });
    if (rec) {
      // Over TLS an end of stream closes both sides: a half close cannot be passed on through a TLS layer.
      read_ended(rec, to.transport().socket(), up, false);
      co_return;
    }
    auto& writing = up ? writing_up_ : writing_down_;
    writing = true;
    auto [wec, written] = co_await to.visit(
        [&](auto& s) { return net::async_write(s, net::buffer(buffer.get(), n), use_nothrow); });
    writing = false;
    if (wec) {
      if (!closed_) close(up ? "upstream" : "client");
      co_return;
    }
    passed(up, buffer.get(), n);
  }
}

// The idle timeout and the lifetime, without a clock read per relayed chunk (2 % of a relayed WebSocket
// message's instructions): the watch wakes every quarter of the idle timeout and looks whether bytes moved
// since its last look. Activity is dated at the look that saw it, never before the last byte, so an idle
// tunnel closes between idle_timeout and 1.25 x idle_timeout after its last byte, never earlier.
net::awaitable<void> Tunnel::watch() {
  net::steady_timer timer(co_await net::this_coro::executor);
  const auto look_every = std::max<std::chrono::steady_clock::duration>(limits_.idle_timeout / 4,
                                                                        std::chrono::milliseconds(1));
  std::uint64_t moved = 0;  // bytes both ways at the last look
  auto active_at = started_;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (const auto bytes = result_.bytes_up + result_.bytes_down; bytes != moved) {
      moved = bytes;
      active_at = now;
    }
    if (now - active_at >= limits_.idle_timeout) {
      close("idle");
      co_return;
    }
    if (limits_.max_lifetime.count() > 0 && now - started_ >= limits_.max_lifetime) {
      close("lifetime");
      co_return;
    }
    auto next = std::min(now + look_every, active_at + limits_.idle_timeout);
    if (limits_.max_lifetime.count() > 0) next = std::min(next, started_ + limits_.max_lifetime);
    timer.expires_at(next);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    if (ec) co_return;  // the pumps ended first
  }
}

}  // namespace sluice::proxy
