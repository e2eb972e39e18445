// The TLS stream (proxy/tls_stream.hpp) against Asio's own ssl::stream as the peer (the same OpenSSL
// driven through a different I/O layer) and against itself: handshakes and name checks, bytes both ways
// at once in amounts that fill the socket, Beast's HTTP writes, close_notify and truncation, timeouts with
// Beast's semantics. Loopback only.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "proxy/drained.hpp"
#include "proxy/tls.hpp"
#include "proxy/tls_stream.hpp"
#include "proxy/upstream_connect.hpp"
#include "tls_test_support.hpp"

using namespace sluice;
using namespace std::chrono_literals;
using proxy::TlsStream;

namespace {

// A connected pair on loopback: `ours` is a TlsStream (server or client), `peer` Asio's ssl::stream.
struct Pair {
  test::Files files;
  std::shared_ptr<ssl::context> server_ctx, client_ctx;
  net::io_context ioc{1};
  std::unique_ptr<TlsStream> ours;
  std::unique_ptr<ssl::stream<tcp::socket>> peer;

  // ours_is_server: the TlsStream accepts; else it connects and checks `host`.
  explicit Pair(bool ours_is_server, const std::string& host = "localhost") {
    std::string error;
    server_ctx = proxy::make_server_context({files.cert, files.key, ""}, error);
    client_ctx = proxy::make_client_context({files.cert, "", "", ""}, error);
    REQUIRE(server_ctx);
    REQUIRE(client_ctx);
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    tcp::socket a(ioc), b(ioc);
    a.connect(acceptor.local_endpoint());
    acceptor.accept(b);
    if (ours_is_server) {
      ours = std::make_unique<TlsStream>(std::move(b), *server_ctx);
      peer = std::make_unique<ssl::stream<tcp::socket>>(std::move(a), *client_ctx);
      peer->set_verify_callback(ssl::host_name_verification(host));
    } else {
      ours = std::make_unique<TlsStream>(std::move(a), *client_ctx);
      peer = std::make_unique<ssl::stream<tcp::socket>>(std::move(b), *server_ctx);
      proxy::prepare_client_tls(*ours, config::TlsClient{files.cert, "", "", ""}, host);
    }
    ours_server = ours_is_server;
  }

  // Both handshakes; returns (ours, peer) errors.
  std::pair<boost::system::error_code, boost::system::error_code> handshake() {
    boost::system::error_code oec = net::error::would_block, pec = net::error::would_block;
    ours->async_handshake(ours_server ? ssl::stream_base::server : ssl::stream_base::client,
                          [&](boost::system::error_code ec) {
                            oec = ec;
                            if (ec) ours->next_layer().socket().close();
                          });
    peer->async_handshake(ours_server ? ssl::stream_base::client : ssl::stream_base::server,
                          [&](boost::system::error_code ec) {
                            pec = ec;
                            if (ec) peer->next_layer().close();
                          });
    ioc.run_for(10s);
    ioc.restart();
    return {oec, pec};
  }

  bool ours_server = true;
};

std::string pattern(std::size_t n, char salt) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + static_cast<unsigned>(salt)) % 26);
  return s;
}

}  // namespace

TEST_CASE("tls stream: handshakes both ways with Asio's stream, and checks the name it was given", "[proxy]") {
  {
    Pair p(true);
    auto [ours, peer] = p.handshake();
    CHECK_FALSE(ours);
    CHECK_FALSE(peer);
  }
  {
    Pair p(false);
    auto [ours, peer] = p.handshake();
    CHECK_FALSE(ours);
    CHECK_FALSE(peer);
  }
  {
    Pair p(false, "elsewhere.example");  // not the certificate's name
    auto [ours, peer] = p.handshake();
    CHECK(ours);
    CHECK(ours.category() == net::error::get_ssl_category());
  }
  {
    Pair p(false, "127.0.0.1");  // an address: checked against IP SANs, which this certificate has none of
    auto [ours, peer] = p.handshake();
    CHECK(ours);
  }
}

TEST_CASE("tls stream: plain bytes where a handshake is expected fail the handshake, no hang", "[proxy]") {
  Pair p(true);
  boost::system::error_code oec = net::error::would_block;
  p.ours->async_handshake(ssl::stream_base::server, [&](boost::system::error_code ec) { oec = ec; });
  net::write(p.peer->next_layer(), net::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n")));
  p.ioc.run_for(5s);
  CHECK(oec);
  CHECK(oec != net::error::would_block);
}

TEST_CASE("tls stream: megabytes both ways at once, in order and intact", "[proxy]") {
  // Also with the socket's reads in the "drained" scheme (proxy/drained_read.hpp), as sessions use it.
  for (const auto [ours_server, drained] : {std::pair{true, false}, {false, false}, {true, true}, {false, true}}) {
    Pair p(ours_server);
    REQUIRE_FALSE(p.handshake().first);
    if (drained) proxy::prepare_drained_reads(p.ours->next_layer().socket());
    const std::string to_peer = pattern(3 * 1024 * 1024 + 17, 1), to_ours = pattern(2 * 1024 * 1024 + 5, 2);
    std::string got_peer(to_peer.size(), '\0'), got_ours(to_ours.size(), '\0');
    boost::system::error_code e1 = net::error::would_block, e2 = e1, e3 = e1, e4 = e1;
    // Ours writes in pieces of mixed sizes (gathered and not), reads with a small buffer.
    std::size_t sent = 0;
    std::function<void()> write_more = [&] {
      if (sent == to_peer.size()) return void(e1 = {});
      const std::size_t n = std::min<std::size_t>(sent % 3 == 0 ? 100 : 70000, to_peer.size() - sent);
      const std::array<net::const_buffer, 2> pieces{net::buffer(to_peer.data() + sent, n / 2),
                                                    net::buffer(to_peer.data() + sent + n / 2, n - n / 2)};
      net::async_write(*p.ours, pieces, [&, n](boost::system::error_code ec, std::size_t w) {
        if (ec) return void(e1 = ec);
        CHECK(w == n);
        sent += n;
        write_more();
      });
    };
    write_more();
    net::async_read(*p.ours, net::buffer(got_ours), [&](boost::system::error_code ec, std::size_t) { e2 = ec; });
    net::async_write(*p.peer, net::buffer(to_ours), [&](boost::system::error_code ec, std::size_t) { e3 = ec; });
    net::async_read(*p.peer, net::buffer(got_peer), [&](boost::system::error_code ec, std::size_t) { e4 = ec; });
    p.ioc.run_for(30s);
    CHECK_FALSE(e1);
    CHECK_FALSE(e2);
    CHECK_FALSE(e3);
    CHECK_FALSE(e4);
    CHECK(got_peer == to_peer);
    CHECK(got_ours == to_ours);
  }
}

TEST_CASE("tls stream: Beast writes and reads HTTP messages over it", "[proxy]") {
  Pair p(false);
  REQUIRE_FALSE(p.handshake().first);
  http::request<http::string_body> req{http::verb::post, "/x", 11};
  req.set(http::field::host, "localhost");
  req.body() = pattern(40000, 3);
  req.prepare_payload();
  http::response<http::string_body> res{http::status::ok, 11};
  res.body() = "done";
  res.prepare_payload();
  beast::flat_buffer ours_buf, peer_buf;
  http::request<http::string_body> got_req;
  http::response<http::string_body> got_res;
  boost::system::error_code e = net::error::would_block;
  http::async_write(*p.ours, req, [&](boost::system::error_code ec, std::size_t) {
    REQUIRE_FALSE(ec);
    http::async_read(*p.ours, ours_buf, got_res, [&](boost::system::error_code ec2, std::size_t) { e = ec2; });
  });
  http::async_read(*p.peer, peer_buf, got_req, [&](boost::system::error_code ec, std::size_t) {
    REQUIRE_FALSE(ec);
    http::async_write(*p.peer, res, [](boost::system::error_code, std::size_t) {});
  });
  p.ioc.run_for(10s);
  CHECK_FALSE(e);
  CHECK(got_req.body() == req.body());
  CHECK(got_res.body() == "done");
}

TEST_CASE("tls stream: an idle connection's buffers are released and made again on its next use", "[proxy]") {
  Pair p(false);
  REQUIRE_FALSE(p.handshake().first);
  // One exchange each way, then released while idle (as the upstream pool does with a cold connection),
  // then more each way: 40 KB, so that every buffer is needed again.
  for (int round = 0; round < 3; ++round) {
    const std::string up = pattern(round == 0 ? 100 : 40000, static_cast<char>(round));
    const std::string down = pattern(round == 0 ? 200 : 40000, static_cast<char>(round + 7));
    std::string got_up(up.size(), '\0'), got_down(down.size(), '\0');
    boost::system::error_code e1 = net::error::would_block, e2 = net::error::would_block;
    net::async_write(*p.ours, net::buffer(up), [&](boost::system::error_code ec, std::size_t) {
      REQUIRE_FALSE(ec);
      net::async_read(*p.ours, net::buffer(got_down), [&](boost::system::error_code ec2, std::size_t) { e1 = ec2; });
    });
    net::async_read(*p.peer, net::buffer(got_up), [&](boost::system::error_code ec, std::size_t) {
      REQUIRE_FALSE(ec);
      net::async_write(*p.peer, net::buffer(down), [&](boost::system::error_code ec2, std::size_t) { e2 = ec2; });
    });
    p.ioc.run_for(10s);
    p.ioc.restart();
    CHECK_FALSE(e1);
    CHECK_FALSE(e2);
    CHECK(got_up == up);
    CHECK(got_down == down);
    p.ours->release_buffers();
    p.ours->release_buffers();  // twice: nothing left to free, no harm
  }
}

TEST_CASE("tls stream: close_notify reads as the end; an end without it reads as truncation", "[proxy]") {
  {
    Pair p(true);
    REQUIRE_FALSE(p.handshake().first);
    char byte;
    boost::system::error_code read_ec = net::error::would_block, shut_ec = read_ec;
    p.ours->async_read_some(net::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
      read_ec = ec;
      p.ours->async_shutdown([&](boost::system::error_code ec2) { shut_ec = ec2; });
    });
    p.peer->async_shutdown([](boost::system::error_code) {});
    p.ioc.run_for(5s);
    CHECK(read_ec == net::error::eof);
    CHECK_FALSE(shut_ec);  // ours went, theirs came
  }
  for (const bool drained : {false, true}) {
    Pair p(true);
    REQUIRE_FALSE(p.handshake().first);
    if (drained) proxy::prepare_drained_reads(p.ours->next_layer().socket());
    std::array<char, 64> got{};
    boost::system::error_code first_ec = net::error::would_block, read_ec = first_ec;
    // Bytes and the FIN back to back: the read that takes the bytes must not leave the end unseen.
    net::write(*p.peer, net::buffer("last words", 10));
    p.peer->next_layer().shutdown(tcp::socket::shutdown_send);  // a FIN without close_notify
    p.ours->async_read_some(net::buffer(got), [&](boost::system::error_code ec, std::size_t n) {
      first_ec = ec;
      CHECK(std::string(got.data(), n) == "last words");
      p.ours->async_read_some(net::buffer(got), [&](boost::system::error_code ec2, std::size_t) { read_ec = ec2; });
    });
    p.ioc.run_for(5s);
    CHECK_FALSE(first_ec);
    CHECK(read_ec == ssl::error::stream_truncated);
  }
}

TEST_CASE("tls stream: timeouts as Beast's: for operations started after, reported as timeout", "[proxy]") {
  {
    Pair p(true);
    REQUIRE_FALSE(p.handshake().first);
    char byte;
    boost::system::error_code read_ec = net::error::would_block;
    p.ours->expires_after(50ms);
    const auto start = std::chrono::steady_clock::now();
    p.ours->async_read_some(net::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) { read_ec = ec; });
    p.ioc.run_for(5s);
    CHECK(read_ec == beast::error::timeout);
    CHECK(p.ours->timed_out());
    CHECK(std::chrono::steady_clock::now() - start >= 50ms);
  }
  {
    // An expiry set while a read is pending is for later operations, not for that read; moving it later
    // keeps a connection that does answer.
    Pair p(true);
    REQUIRE_FALSE(p.handshake().first);
    char byte = 0;
    boost::system::error_code read_ec = net::error::would_block, write_ec = read_ec;
    p.ours->expires_after(20ms);
    p.ours->expires_never();
    p.ours->async_read_some(net::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) { read_ec = ec; });
    p.ours->expires_after(30ms);  // the pending read keeps "never"
    net::steady_timer later(p.ioc);
    later.expires_after(150ms);
    later.async_wait([&](boost::system::error_code) {
      net::async_write(*p.peer, net::buffer("!", 1), [&](boost::system::error_code ec, std::size_t) { write_ec = ec; });
    });
    p.ioc.run_for(5s);
    CHECK_FALSE(write_ec);
    CHECK_FALSE(read_ec);
    CHECK(byte == '!');
    CHECK_FALSE(p.ours->timed_out());
  }
}

TEST_CASE("tls stream: write_now sends what the socket takes, async_flush the rest", "[proxy]") {
  Pair p(true);
  REQUIRE_FALSE(p.handshake().first);
  // Small: head and body in one go, all sent at once.
  boost::system::error_code ec;
  // (An empty buffer in between, as Beast's serializer hands over: it may have no data pointer.)
  const std::array<net::const_buffer, 3> small{net::buffer("HTTP/1.1 200 OK\r\n\r\n", 19), net::const_buffer(),
                                               net::buffer("hi", 2)};
  CHECK(p.ours->write_now(small, ec) == 21);
  CHECK_FALSE(ec);
  CHECK(p.ours->flushed());
  std::string got(21, '\0');
  net::read(*p.peer, net::buffer(got));
  CHECK(got == "HTTP/1.1 200 OK\r\n\r\nhi");
  // Large: more than the socket takes, so records wait for async_flush while the peer reads.
  const std::string big = pattern(8 * 1024 * 1024, 4);
  CHECK(p.ours->write_now(net::buffer(big), ec) == big.size());
  CHECK_FALSE(ec);
  CHECK_FALSE(p.ours->flushed());
  std::string got_big(big.size(), '\0');
  boost::system::error_code flush_ec = net::error::would_block, read_ec = flush_ec;
  p.ours->async_flush([&](boost::system::error_code e) { flush_ec = e; });
  net::async_read(*p.peer, net::buffer(got_big), [&](boost::system::error_code e, std::size_t) { read_ec = e; });
  p.ioc.run_for(30s);
  CHECK_FALSE(flush_ec);
  CHECK_FALSE(read_ec);
  CHECK(p.ours->flushed());
  CHECK(got_big == big);
}

TEST_CASE("tls stream: a KeyUpdate the peer asks for is answered while reading, and both go on", "[proxy]") {
  for (const bool ours_server : {true, false}) {
    Pair p(ours_server);
    REQUIRE_FALSE(p.handshake().first);
    // The peer asks for new keys both ways, then sends: ours reads that, which writes its own KeyUpdate
    // (the read sends it), then ours writes with its new keys.
    REQUIRE(SSL_key_update(p.peer->native_handle(), SSL_KEY_UPDATE_REQUESTED) == 1);
    net::write(*p.peer, net::buffer("ping", 4));
    std::array<char, 4> got{};
    std::string answer(4, '\0');
    boost::system::error_code read_ec = net::error::would_block, write_ec = read_ec, peer_ec = read_ec;
    net::async_read(*p.ours, net::buffer(got), [&](boost::system::error_code ec, std::size_t) {
      read_ec = ec;
      net::async_write(*p.ours, net::buffer("pong", 4), [&](boost::system::error_code e, std::size_t) { write_ec = e; });
    });
    net::async_read(*p.peer, net::buffer(answer), [&](boost::system::error_code ec, std::size_t) { peer_ec = ec; });
    p.ioc.run_for(10s);
    CHECK_FALSE(read_ec);
    CHECK(std::string(got.data(), 4) == "ping");
    CHECK_FALSE(write_ec);
    CHECK_FALSE(peer_ec);
    CHECK(answer == "pong");
  }
}
