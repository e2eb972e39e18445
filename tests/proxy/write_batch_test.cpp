// WriteBatch (proxy/write_batch.hpp): writes wait for the handlers already queued, then go out together, each
// completing with its own result. Loopback sockets only.
#include <catch2/catch.hpp>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

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

// The order the batching relies on (write_batch.hpp): the completions of one epoll_wait are all queued
// before the first runs, and the flush posted by the first of them runs after the rest. Were Asio to run a
// posted handler sooner (or one readiness event per epoll_wait), the writes would go out one per read and
// this test would see a write complete between the reads.
TEST_CASE("write batch: the reads of one epoll_wait all join the flush the first of them posted", "[proxy]") {
  constexpr int kPairs = 4;
  net::io_context ioc{1};
  proxy::WriteBatch batch(ioc);
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < kPairs; ++i) pairs.push_back(std::make_unique<Pair>(ioc));
  for (auto& p : pairs) p->server.non_blocking(true);

  const std::string reply = "HTTP/1.1 200 OK\r\n\r\n";
  const auto reply_bufs = buffers_of(reply);
  std::vector<std::array<char, 64>> in(kPairs);
  std::vector<std::string> order;
  std::vector<std::size_t> batch_sizes;  // pending() as each read's write joins
  for (int i = 0; i < kPairs; ++i) {
    // Nothing to read yet: each read waits in the reactor for its readiness event.
    pairs[i]->server.async_read_some(net::buffer(in[i]), [&, i](boost::system::error_code ec, std::size_t) {
      REQUIRE_FALSE(ec);
      order.push_back("read " + std::to_string(i));
      batch.async_write_some(pairs[i]->server, reply_bufs, [&, i](boost::system::error_code wec, std::size_t n) {
        CHECK_FALSE(wec);
        CHECK(n == reply.size());
        order.push_back("write " + std::to_string(i));
      });
      batch_sizes.push_back(batch.pending());
    });
  }
  // Every request arrives before the io_context looks: one epoll_wait reports all of them.
  for (auto& p : pairs) net::write(p->client, net::buffer("GET / HTTP/1.1\r\n\r\n", 18));

  ioc.run();
  REQUIRE(order.size() == 2 * kPairs);
  for (int i = 0; i < kPairs; ++i) {
    INFO("order: " << Catch::Detail::stringify(order));
    CHECK(order[i].starts_with("read "));
    CHECK(order[kPairs + i].starts_with("write "));
  }
  // One flush took them all.
  CHECK(batch_sizes == std::vector<std::size_t>{1, 2, 3, 4});
  for (auto& p : pairs) CHECK(read_all(p->client, reply.size()) == reply);
}

// The raw pointers a pending write holds stay good because its handler owns what they point into (the
// coroutine frame, in the proxy); destroying a batch destroys the pending handlers unrun and writes nothing.
TEST_CASE("write batch: a batch destroyed with writes pending drops their handlers unrun", "[proxy]") {
  net::io_context ioc{1};
  Pair a(ioc);
  auto owner = std::make_shared<int>(0);  // stands for the coroutine frame the handler owns
  bool called = false;
  const std::string text = "x";
  const auto bufs = buffers_of(text);
  {
    proxy::WriteBatch batch(ioc);
    batch.async_write_some(a.client, bufs, [&called, owner](boost::system::error_code, std::size_t) { called = true; });
    CHECK(owner.use_count() == 2);
  }
  CHECK(owner.use_count() == 1);
  CHECK_FALSE(called);
  CHECK(a.server.available() == 0);
}
