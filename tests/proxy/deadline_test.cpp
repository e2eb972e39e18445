// Deadline (proxy/deadline.hpp): a passed deadline closes the stream and fails its pending read; one moved
// later or cleared before it passes does not. Loopback sockets, deadlines of tens of milliseconds.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "proxy/deadline.hpp"

using namespace sluice;
using namespace std::chrono_literals;

namespace {

struct Pair {
  explicit Pair(net::io_context& ioc) : server(ioc), client(ioc) {
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server.socket());
  }
  beast::tcp_stream server;
  tcp::socket client;
};

struct Read {
  std::optional<boost::system::error_code> ec;
  char byte = 0;
};

void start_read(Pair& p, Read& r) {
  p.server.socket().async_read_some(net::buffer(&r.byte, 1), [&r](boost::system::error_code ec, std::size_t) { r.ec = ec; });
}

void run_for(net::io_context& ioc, std::chrono::milliseconds d) {
  ioc.restart();
  ioc.run_for(d);
}

}  // namespace

TEST_CASE("deadline: a passed deadline closes the stream and fails the read", "[proxy]") {
  net::io_context ioc{1};
  Pair p(ioc);
  proxy::Deadline deadline;
  Read r;
  deadline.set_after(p.server, 30ms);
  start_read(p, r);
  run_for(ioc, 500ms);
  REQUIRE(r.ec.has_value());
  CHECK(*r.ec == net::error::operation_aborted);
  CHECK(deadline.passed());
  CHECK_FALSE(p.server.socket().is_open());
}

TEST_CASE("deadline: moved later, it waits for the later time", "[proxy]") {
  net::io_context ioc{1};
  Pair p(ioc);
  proxy::Deadline deadline;
  Read r;
  deadline.set_after(p.server, 30ms);
  start_read(p, r);
  deadline.set_after(p.server, 300ms);  // the timer still waits for the first: it must wait again
  run_for(ioc, 150ms);
  CHECK_FALSE(r.ec.has_value());
  CHECK_FALSE(deadline.passed());
  run_for(ioc, 1000ms);
  REQUIRE(r.ec.has_value());
  CHECK(deadline.passed());
}

TEST_CASE("deadline: moved earlier, it fires at the earlier time", "[proxy]") {
  net::io_context ioc{1};
  Pair p(ioc);
  proxy::Deadline deadline;
  Read r;
  deadline.set_after(p.server, 60s);
  deadline.set_after(p.server, 30ms);
  start_read(p, r);
  run_for(ioc, 500ms);
  REQUIRE(r.ec.has_value());
  CHECK(deadline.passed());
}

TEST_CASE("deadline: cleared, the stream stays open past it and a read completes", "[proxy]") {
  net::io_context ioc{1};
  Pair p(ioc);
  proxy::Deadline deadline;
  deadline.set_after(p.server, 30ms);
  deadline.clear();
  run_for(ioc, 150ms);
  CHECK_FALSE(deadline.passed());
  REQUIRE(p.server.socket().is_open());
  // A later deadline works as new after a cleared one.
  Read r;
  deadline.set_after(p.server, 1s);
  start_read(p, r);
  net::write(p.client, net::buffer("x", 1));
  run_for(ioc, 200ms);
  REQUIRE(r.ec.has_value());
  CHECK_FALSE(*r.ec);
  CHECK(r.byte == 'x');
  CHECK_FALSE(deadline.passed());
}

TEST_CASE("deadline: destroyed with its wait pending, nothing is touched later", "[proxy]") {
  net::io_context ioc{1};
  Pair p(ioc);
  {
    proxy::Deadline deadline;
    deadline.set_after(p.server, 20ms);
  }
  run_for(ioc, 100ms);  // the cancelled wait's handler runs on a state the destructor detached
  CHECK(p.server.socket().is_open());
}
