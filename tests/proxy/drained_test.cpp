// mark_drained (proxy/drained.hpp): after it, the next read waits for a readiness event instead of trying
// recv() first, and a read queued that way still completes when the peer sends. Where the build's Boost is
// the one it targets and the build option is on, an inactive trick fails here. Loopback sockets only.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/version.hpp>

#include "proxy/drained.hpp"
#include "proxy/drained_read.hpp"

#ifndef SLUICE_MARK_DRAINED
#define SLUICE_MARK_DRAINED 1  // as in proxy/drained.cpp: meson passes the build option
#endif

using namespace sluice;
using namespace std::chrono_literals;

namespace {

constexpr auto kWait = 200ms;  // far longer than loopback delivery, short enough for a unit test

// A connected loopback pair on one io_context.
struct Pair {
  net::io_context ioc{1};
  tcp::socket server{ioc};
  tcp::socket client{ioc};

  Pair() {
    tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }

  // Starts one read of up to `room` bytes on the server side; `got` fills in when it completes.
  void start_read(std::string& got, bool& done, std::size_t room) {
    buf.assign(room, '\0');
    server.async_read_some(net::buffer(buf), [&, this](boost::system::error_code ec, std::size_t n) {
      REQUIRE_FALSE(ec);
      got.assign(buf.data(), n);
      done = true;
    });
  }

  // Runs the io_context until `done` or `limit` has passed.
  void run_until(const bool& done, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    ioc.restart();
    while (!done && std::chrono::steady_clock::now() < end) ioc.run_for(5ms);
  }

  std::string buf;
};

// Reads "a" through a readiness event, which leaves the reactor set to try the next read at once.
void read_first_byte(Pair& p) {
  std::string got;
  bool done = false;
  p.start_read(got, done, 1);
  p.run_until(done, 10ms);  // nothing to read yet: the read now waits for an event
  REQUIRE_FALSE(done);
  net::write(p.client, net::buffer("ab", 2));
  p.run_until(done, kWait);
  REQUIRE(got == "a");  // "b" stays in the socket on purpose
}

}  // namespace

// Worked out here from the build's own facts, not from drained.cpp's conditions, so that a condition
// there that compiles the trick out by mistake is caught.
constexpr bool kExpected = SLUICE_MARK_DRAINED && BOOST_VERSION / 100 == proxy::kMarkDrainedBoost;

TEST_CASE("mark_drained: active wherever the build targets it", "[proxy]") {
  const auto status = proxy::mark_drained_status();
  INFO("mark_drained: " << proxy::to_string(status));
  CHECK(proxy::mark_drained_expected() == kExpected);
  if (kExpected) {
    REQUIRE(status == proxy::DrainedTrick::active);
  } else {
    CHECK(status != proxy::DrainedTrick::active);
    CHECK(status != proxy::DrainedTrick::broken);
    WARN("mark_drained is not targeted by this build (" << proxy::to_string(status) << ")");
  }
  // Checked once: the answer does not change.
  CHECK(proxy::mark_drained_status() == status);
}

TEST_CASE("mark_drained: the next read waits for readiness instead of trying recv() first", "[proxy]") {
  if (!kExpected) {
    WARN("mark_drained is a no-op in this build; its effect is not checked");
    return;
  }
  Pair p;
  read_first_byte(p);
  // Misused on purpose: "b" is still there. A read that tried recv() first would return it at once.
  proxy::mark_drained(p.server);
  std::string got;
  bool done = false;
  p.start_read(got, done, 16);
  p.run_until(done, kWait);
  CHECK_FALSE(done);
  // The peer's next bytes bring the event, and the waiting read takes everything.
  net::write(p.client, net::buffer("c", 1));
  p.run_until(done, kWait);
  REQUIRE(done);
  CHECK(got == "bc");
}

TEST_CASE("mark_drained: without it the next read returns what is already there", "[proxy]") {
  Pair p;
  read_first_byte(p);
  std::string got;
  bool done = false;
  p.start_read(got, done, 16);
  p.run_until(done, kWait);
  REQUIRE(done);
  CHECK(got == "b");
}

TEST_CASE("mark_drained: used as intended, on a drained socket, the next read still completes", "[proxy]") {
  Pair p;
  std::string got;
  bool done = false;
  net::write(p.client, net::buffer("x", 1));
  p.start_read(got, done, 16);
  p.run_until(done, kWait);
  REQUIRE(got == "x");
  proxy::mark_drained(p.server);  // short read: drained
  done = false;
  p.start_read(got, done, 16);
  net::write(p.client, net::buffer("yz", 2));
  p.run_until(done, kWait);
  REQUIRE(done);
  CHECK(got == "yz");
  // A closed socket is skipped.
  p.server.close();
  proxy::mark_drained(p.server);
}

namespace {

// One async_read_drained of up to 16 bytes on the server side, run to completion or kWait.
struct DrainedRead {
  std::string got;
  boost::system::error_code ec;
  bool done = false;

  // Starts the read and runs it for up to `limit`.
  explicit DrainedRead(Pair& p, std::chrono::milliseconds limit = kWait) {
    p.buf.assign(16, '\0');
    proxy::async_read_drained(p.server, net::buffer(p.buf), [&](boost::system::error_code e, std::size_t n) {
      ec = e;
      got.assign(p.buf.data(), n);
      done = true;
    });
    p.run_until(done, limit);
  }
};

}  // namespace

TEST_CASE("async_read_drained: a short read leaves the next read waiting, which completes on new bytes",
          "[proxy]") {
  Pair p;
  const bool prepared = proxy::prepare_drained_reads(p.server);
  CHECK(prepared == kExpected);
  net::write(p.client, net::buffer("x", 1));
  DrainedRead first(p);
  REQUIRE(first.done);
  CHECK(first.got == "x");
  CHECK(proxy::next_read_waits(p.server) == kExpected);  // decided inside the reactor, with the recv()
  net::write(p.client, net::buffer("yz", 2));
  DrainedRead second(p);
  REQUIRE(second.done);
  CHECK(second.got == "yz");
  // A full buffer is not a sign of an empty socket: the next read tries recv() first.
  net::write(p.client, net::buffer(std::string(40, 'q')));
  DrainedRead full(p);
  REQUIRE(full.done);
  CHECK(full.got.size() == 16);
  CHECK_FALSE(proxy::next_read_waits(p.server));
}

TEST_CASE("async_read_drained: bytes and FIN together, the next read sees the end instead of waiting",
          "[proxy]") {
  Pair p;
  proxy::prepare_drained_reads(p.server);
  DrainedRead data(p, 10ms);  // nothing there yet: the read waits for the reactor's report
  REQUIRE_FALSE(data.done);
  net::write(p.client, net::buffer("ab", 2));
  p.client.shutdown(tcp::socket::shutdown_send);
  std::this_thread::sleep_for(20ms);  // bytes and FIN both in the server's socket: one report covers both
  p.run_until(data.done, kWait);
  REQUIRE(data.done);
  CHECK(data.got == "ab");
  // The recv() took the FIN too, and the report that said so (EPOLLRDHUP) is spent: waiting would hang.
  CHECK_FALSE(proxy::next_read_waits(p.server));
  DrainedRead end(p);
  REQUIRE(end.done);
  CHECK(end.ec == net::error::eof);
}

TEST_CASE("async_read_drained: without prepare_drained_reads it is an ordinary read", "[proxy]") {
  Pair p;
  net::write(p.client, net::buffer("x", 1));
  DrainedRead first(p);
  REQUIRE(first.done);
  CHECK(first.got == "x");
  CHECK_FALSE(proxy::next_read_waits(p.server));
}
