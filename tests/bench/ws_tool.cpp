// sluice-wsbench: the WebSocket benchmark's two ends, one thread each.
//
//   sluice-wsbench echo --listen ADDR:PORT [--port-file FILE]
//       A WebSocket echo server (Beast): every message goes back as it came.
//   sluice-wsbench load --target ADDR:PORT --conns N --duration SECONDS [--size BYTES]
//       N connections, each in a ping-pong loop: send a binary message, wait for its echo, repeat.
//       Prints `messages: N`, `msgs_per_s: X`, `rtt_p50_us: X`, `rtt_p99_us: X`, `errors: N`.
//
// Written in C++ because a Python client or server would be the bottleneck and hide the proxies'
// differences. Coroutines keep each loop readable; the cost is the same for every proxy measured.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

struct Options {
  std::string mode;
  std::string address;  // --listen or --target
  std::string port_file;
  int conns = 16;
  int duration_s = 5;
  std::size_t size = 64;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "sluice-wsbench: %s\n"
               "usage: sluice-wsbench echo --listen ADDR:PORT [--port-file FILE]\n"
               "       sluice-wsbench load --target ADDR:PORT --conns N --duration S [--size BYTES]\n",
               why);
  std::exit(2);
}

tcp::endpoint parse_endpoint(const std::string& text) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) usage("address must be ADDR:PORT");
  boost::system::error_code ec;
  auto address = net::ip::make_address(text.substr(0, colon), ec);
  if (ec) usage("bad address");
  return {address, static_cast<unsigned short>(std::stoi(text.substr(colon + 1)))};
}

Options parse(int argc, char** argv) {
  if (argc < 2) usage("missing mode");
  Options o;
  o.mode = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (i + 1 >= argc) usage("option without a value");
    std::string value = argv[++i];
    if (arg == "--listen" || arg == "--target") o.address = value;
    else if (arg == "--port-file") o.port_file = value;
    else if (arg == "--conns") o.conns = std::stoi(value);
    else if (arg == "--duration") o.duration_s = std::stoi(value);
    else if (arg == "--size") o.size = std::stoul(value);
    else usage("unknown option");
  }
  if (o.address.empty()) usage("--listen or --target is required");
  return o;
}

// ---- echo server -------------------------------------------------------------------------------

net::awaitable<void> echo_session(tcp::socket socket) {
  websocket::stream<beast::tcp_stream> ws(std::move(socket));
  ws.read_message_max(64 * 1024 * 1024);
  beast::flat_buffer buffer;
  try {
    co_await ws.async_accept(net::use_awaitable);
    for (;;) {
      co_await ws.async_read(buffer, net::use_awaitable);
      ws.text(ws.got_text());
      co_await ws.async_write(buffer.data(), net::use_awaitable);
      buffer.consume(buffer.size());
    }
  } catch (const boost::system::system_error&) {
    // The client closed or went away: the session ends.
  }
}

net::awaitable<void> accept_loop(tcp::acceptor acceptor) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(net::use_awaitable);
    socket.set_option(tcp::no_delay(true));
    net::co_spawn(acceptor.get_executor(), echo_session(std::move(socket)), net::detached);
  }
}

int run_echo(const Options& o) {
  net::io_context io(1);
  tcp::acceptor acceptor(io, parse_endpoint(o.address));
  auto port = acceptor.local_endpoint().port();
  if (!o.port_file.empty()) {
    std::ofstream(o.port_file + ".tmp") << port << "\n";
    std::rename((o.port_file + ".tmp").c_str(), o.port_file.c_str());
  }
  std::printf("%u\n", port);
  std::fflush(stdout);
  net::co_spawn(io, accept_loop(std::move(acceptor)), net::detached);
  io.run();
  return 0;
}

// ---- load client -------------------------------------------------------------------------------

struct Totals {
  std::vector<std::uint32_t> rtt_us;  // one per echoed message
  std::uint64_t errors = 0;
};

net::awaitable<void> ping_pong(tcp::endpoint target, std::size_t size, Clock::time_point stop, Totals& totals) {
  auto executor = co_await net::this_coro::executor;
  try {
    websocket::stream<beast::tcp_stream> ws(executor);
    co_await beast::get_lowest_layer(ws).async_connect(target, net::use_awaitable);
    beast::get_lowest_layer(ws).socket().set_option(tcp::no_delay(true));
    co_await ws.async_handshake("bench.test", "/ws", net::use_awaitable);
    ws.binary(true);
    ws.auto_fragment(false);
    ws.read_message_max(64 * 1024 * 1024);
    std::string message(size, 'x');
    beast::flat_buffer buffer;
    while (Clock::now() < stop) {
      auto sent = Clock::now();
      co_await ws.async_write(net::buffer(message), net::use_awaitable);
      co_await ws.async_read(buffer, net::use_awaitable);
      if (buffer.size() != size) ++totals.errors;
      buffer.consume(buffer.size());
      totals.rtt_us.push_back(static_cast<std::uint32_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent).count()));
    }
    co_await ws.async_close(websocket::close_code::normal, net::use_awaitable);
  } catch (const boost::system::system_error& e) {
    if (totals.errors++ == 0) std::fprintf(stderr, "sluice-wsbench: connection failed: %s\n", e.code().message().c_str());
  }
}

double percentile(std::vector<std::uint32_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  auto index = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1));
  return sorted[index];
}

int run_load(const Options& o) {
  net::io_context io(1);
  Totals totals;
  totals.rtt_us.reserve(4u << 20);
  auto start = Clock::now();
  auto stop = start + std::chrono::seconds(o.duration_s);
  for (int i = 0; i < o.conns; ++i)
    net::co_spawn(io, ping_pong(parse_endpoint(o.address), o.size, stop, totals), net::detached);
  io.run();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::sort(totals.rtt_us.begin(), totals.rtt_us.end());
  std::printf("messages: %zu\n", totals.rtt_us.size());
  std::printf("msgs_per_s: %.0f\n", static_cast<double>(totals.rtt_us.size()) / seconds);
  std::printf("rtt_p50_us: %.0f\n", percentile(totals.rtt_us, 50));
  std::printf("rtt_p99_us: %.0f\n", percentile(totals.rtt_us, 99));
  std::printf("errors: %llu\n", static_cast<unsigned long long>(totals.errors));
  return totals.errors == 0 && !totals.rtt_us.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  if (o.mode == "echo") return run_echo(o);
  if (o.mode == "load") return run_load(o);
  usage("mode must be echo or load");
}
