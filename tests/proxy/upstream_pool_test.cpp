// UpstreamPool (proxy/upstream_pool.hpp): idle keep-alive connections per endpoint, most recent first,
// capped, swept after the idle timeout, forgotten when their endpoint goes, and never handed out once the
// peer has closed them. Loopback sockets only; the "upstream" ends are accepted by the test.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/write.hpp>

#include "proxy/upstream_pool.hpp"

using namespace sluice;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Connections from the pool's side to a listener of the test's, whose accepted ends it keeps.
struct Upstream {
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
  std::vector<tcp::socket> peers;

  std::unique_ptr<proxy::UpstreamConnection> connect(const std::string& key) {
    tcp::socket s(ioc);
    s.connect(acceptor.local_endpoint());
    peers.push_back(acceptor.accept());
    return std::make_unique<proxy::UpstreamConnection>(proxy::Stream(std::move(s)), key);
  }

  // Whether the peer of connection `i` sees it closed (EOF) within a moment.
  bool closed_at_peer(std::size_t i) {
    auto& p = peers.at(i);
    p.non_blocking(false);
    ::timeval tv{0, 500'000};  // 0.5 s: far longer than loopback delivery
    ::setsockopt(p.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char byte;
    boost::system::error_code ec;
    p.read_some(net::buffer(&byte, 1), ec);
    return ec == net::error::eof || ec == net::error::connection_reset;
  }
};

proxy::UpstreamConnection* raw(const std::unique_ptr<proxy::UpstreamConnection>& c) { return c.get(); }

config::UpstreamPool settings(std::uint32_t max_idle, std::chrono::milliseconds idle_timeout = 60s) {
  config::UpstreamPool cfg;
  cfg.max_idle_per_endpoint = max_idle;
  cfg.idle_timeout = idle_timeout;
  return cfg;
}

}  // namespace

TEST_CASE("upstream pool: nothing to take from an empty pool or another endpoint", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(4));
  CHECK(pool.take("127.0.0.1:1") == nullptr);
  pool.give_back(up.connect("a:1"), Clock::now());
  CHECK(pool.take("b:1") == nullptr);
  CHECK(pool.take("a:1|tls") == nullptr);  // the plain and the TLS connections to an endpoint differ
  CHECK(pool.idle_count() == 1);
}

TEST_CASE("upstream pool: the most recently used connection is taken first", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(4));
  auto first = up.connect("a:1");
  auto second = up.connect("a:1");
  auto* p1 = raw(first);
  auto* p2 = raw(second);
  const auto now = Clock::now();
  pool.give_back(std::move(first), now);
  pool.give_back(std::move(second), now);
  CHECK(pool.idle_count() == 2);
  auto t1 = pool.take("a:1");
  auto t2 = pool.take("a:1");
  CHECK(raw(t1) == p2);
  CHECK(raw(t2) == p1);
  CHECK(pool.take("a:1") == nullptr);
  CHECK(pool.idle_count() == 0);
}

TEST_CASE("upstream pool: past the per-endpoint cap a connection is closed, not kept", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(1));
  pool.give_back(up.connect("a:1"), Clock::now());
  pool.give_back(up.connect("a:1"), Clock::now());
  pool.give_back(up.connect("b:1"), Clock::now());  // another endpoint has its own cap
  CHECK(pool.idle_count() == 2);
  CHECK(up.closed_at_peer(1));

  proxy::UpstreamPool none(settings(0));  // max_idle_per_endpoint 0: no pooling at all
  none.give_back(up.connect("a:1"), Clock::now());
  CHECK(none.idle_count() == 0);
  CHECK(up.closed_at_peer(3));
}

TEST_CASE("upstream pool: sweep closes connections idle past the timeout", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(4, 300ms));
  const auto t0 = Clock::now();
  pool.give_back(up.connect("a:1"), t0);
  pool.give_back(up.connect("a:1"), t0 + 200ms);
  pool.sweep(t0 + 299ms);
  CHECK(pool.idle_count() == 2);
  pool.sweep(t0 + 300ms);
  CHECK(pool.idle_count() == 1);
  CHECK(up.closed_at_peer(0));
  pool.sweep(t0 + 600ms);
  CHECK(pool.idle_count() == 0);
  CHECK(up.closed_at_peer(1));
}

TEST_CASE("upstream pool: a connection idle for a while gives its read buffer back until taken", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(4, 60s));
  const auto t0 = Clock::now();
  auto conn = up.connect("a:1");
  auto* p = raw(conn);
  REQUIRE(p->buffer.capacity() >= proxy::UpstreamConnection::kReadBuffer);
  pool.give_back(std::move(conn), t0);
  pool.sweep(t0 + 1s);  // recently used: kept warm
  auto warm = pool.take("a:1");
  REQUIRE(raw(warm) == p);
  CHECK(p->buffer.capacity() >= proxy::UpstreamConnection::kReadBuffer);
  pool.give_back(std::move(warm), t0);
  pool.sweep(t0 + 3s);  // cold: still pooled, without its buffer
  CHECK(pool.idle_count() == 1);
  CHECK(p->buffer.capacity() == 0);
  CHECK(p->stream.transport().socket().is_open());
  auto cold = pool.take("a:1");  // (idle_since is t0, long ago: the peek finds it alive)
  REQUIRE(raw(cold) == p);
  CHECK(p->buffer.capacity() >= proxy::UpstreamConnection::kReadBuffer);
}

TEST_CASE("upstream pool: endpoints that left the routing table are forgotten", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(4));
  pool.give_back(up.connect("a:1"), Clock::now());
  pool.give_back(up.connect("b:1"), Clock::now());
  pool.give_back(up.connect("b:1|tls"), Clock::now());
  pool.forget_except({"b:1"});
  CHECK(pool.idle_count() == 1);
  CHECK(up.closed_at_peer(0));
  CHECK(up.closed_at_peer(2));
  CHECK(pool.take("b:1") != nullptr);

  pool.give_back(up.connect("c:1"), Clock::now());
  pool.close_all();
  CHECK(pool.idle_count() == 0);
  CHECK(up.closed_at_peer(3));
}

TEST_CASE("upstream pool: a connection idle for a while is checked before it is handed out", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(4));
  const auto long_ago = Clock::now() - 10s;  // past the moment within which a connection is trusted as is
  auto alive = up.connect("a:1");
  auto* alive_raw = raw(alive);
  pool.give_back(std::move(alive), long_ago);
  pool.give_back(up.connect("a:1"), long_ago);  // its peer closes it
  pool.give_back(up.connect("a:1"), long_ago);  // its peer sends stray bytes: unusable
  up.peers[1].close();
  net::write(up.peers[2], net::buffer("x", 1));
  // The two dead ones (most recent first) are discarded, the live one is taken.
  auto taken = pool.take("a:1");
  CHECK(raw(taken) == alive_raw);
  CHECK(pool.idle_count() == 0);

  // Bytes left in a connection's own buffer make it unusable too.
  auto buffered = up.connect("a:1");
  buffered->buffer.commit(net::buffer_copy(buffered->buffer.prepare(1), net::buffer("y", 1)));
  pool.give_back(std::move(buffered), long_ago);
  CHECK(pool.take("a:1") == nullptr);
}

TEST_CASE("upstream pool: a connection given back a moment ago is taken without a check", "[proxy]") {
  Upstream up;
  proxy::UpstreamPool pool(settings(4));
  auto conn = up.connect("a:1");
  auto* p = raw(conn);
  // Given back "now": stamped a minute ahead, so that however slow this machine, take() comes within the
  // moment it trusts.
  pool.give_back(std::move(conn), Clock::now() + 1min);
  up.peers[0].close();  // not looked at within that moment (a peek per reuse would cost a syscall)
  CHECK(raw(pool.take("a:1")) == p);
}
