// WriteBatch (proxy/write_batch.hpp): writes wait for the handlers already queued, then go out together, each
// completing with its own result. Loopback sockets only.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>

#include "proxy/write_batch.hpp"

using namespace sluice;

namespace {

struct Pair {
  explicit Pair(net::io_context& ioc) : server(ioc), client(ioc) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    client.non_blocking(true);
  }
  tcp::socket server;
  tcp::socket client;
};

struct Result {
  bool done = false;
  boost::system::error_code ec;
  std::size_t n = 0;
};

proxy::WriteBatch::Buffers buffers_of(const std::string& text) {
  return {net::buffer(text), net::const_buffer(), net::const_buffer(), net::const_buffer(), net::const_buffer()};
}

std::string read_all(tcp::socket& s, std::size_t n) {
  std::string out(n, '\0');
  net::read(s, net::buffer(out));
  return out;
}

}  // namespace

TEST_CASE("write batch: writes go out after the queued handlers, together", "[proxy]") {
  net::io_context ioc{1};
  proxy::WriteBatch batch(ioc);
  Pair a(ioc), b(ioc);
  const std::string text_a = "GET /a HTTP/1.1\r\n\r\n", text_b = "GET /b HTTP/1.1\r\n\r\n";
  const auto bufs_a = buffers_of(text_a), bufs_b = buffers_of(text_b);
  Result ra, rb;
  std::vector<std::string> order;
  // A handler queued before the writes (the rest of an epoll batch) runs before they are sent.
  net::post(ioc, [&] {
    order.push_back("queued handler");
    CHECK(a.server.available() == 0);
  });
  batch.async_write_some(a.client, bufs_a, [&](boost::system::error_code ec, std::size_t n) {
    order.push_back("a");
    ra = {true, ec, n};
    CHECK(b.server.available() == text_b.size());  // every write goes out before any completion
  });
  batch.async_write_some(b.client, bufs_b, [&](boost::system::error_code ec, std::size_t n) {
    order.push_back("b");
    rb = {true, ec, n};
  });
  CHECK(batch.pending() == 2);
  CHECK(a.server.available() == 0);  // nothing written before the io_context runs

  ioc.run();
  CHECK(order == std::vector<std::string>{"queued handler", "a", "b"});
  CHECK(batch.pending() == 0);
  REQUIRE(ra.done);
  REQUIRE(rb.done);
  CHECK_FALSE(ra.ec);
  CHECK(ra.n == text_a.size());
  CHECK(rb.n == text_b.size());
  CHECK(read_all(a.server, text_a.size()) == text_a);
  CHECK(read_all(b.server, text_b.size()) == text_b);
}

TEST_CASE("write batch: a socket closed meanwhile completes with its error, the others are sent", "[proxy]") {
  net::io_context ioc{1};
  proxy::WriteBatch batch(ioc);
  Pair a(ioc), b(ioc);
  const std::string text = "x";
  const auto bufs = buffers_of(text);
  Result ra, rb;
  batch.async_write_some(a.client, bufs, [&](boost::system::error_code ec, std::size_t n) { ra = {true, ec, n}; });
  batch.async_write_some(b.client, bufs, [&](boost::system::error_code ec, std::size_t n) { rb = {true, ec, n}; });
  a.client.close();
  ioc.run();
  REQUIRE(ra.done);
  CHECK(ra.ec);
  CHECK(ra.n == 0);
  REQUIRE(rb.done);
  CHECK_FALSE(rb.ec);
  CHECK(read_all(b.server, 1) == "x");
}

TEST_CASE("write batch: a write queued by a completion goes out with the next flush", "[proxy]") {
  net::io_context ioc{1};
  proxy::WriteBatch batch(ioc);
  Pair a(ioc);
  const std::string first = "1", second = "2";
  const auto bufs_1 = buffers_of(first), bufs_2 = buffers_of(second);
  Result r2;
  batch.async_write_some(a.client, bufs_1, [&](boost::system::error_code, std::size_t) {
    batch.async_write_some(a.client, bufs_2, [&](boost::system::error_code ec, std::size_t n) { r2 = {true, ec, n}; });
    CHECK(batch.pending() == 1);
  });
  ioc.run();
  REQUIRE(r2.done);
  CHECK(r2.n == 1);
  CHECK(read_all(a.server, 2) == "12");
}
