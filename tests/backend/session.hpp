// One accepted connection of the test backend: reads requests one after the
// other (keep-alive, pipelining) and answers each as its path asks, bodies
// streamed in fixed-size pieces both ways.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/serializer.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "net/net.hpp"
#include "tests/backend/action.hpp"

namespace sluice::testbackend {

// State shared by every connection of the process (all threads).
struct Shared {
  std::string name;
  std::chrono::milliseconds idle_timeout{0};
  std::atomic<unsigned> status_override{0};  // 0: normal
  std::atomic<std::uint64_t> accepted{0};    // connection ids
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  // `socket` is connected; `id` is its accept order. Call run() once.
  Session(tcp::socket socket, Shared& shared, std::uint64_t id);
  void run();

 private:
  using error_code = boost::system::error_code;
  static constexpr std::size_t piece_size = 64 * 1024;
  static constexpr std::uint32_t header_limit = 1024 * 1024;  // above any proxy's limit

  void do_read_header();
  void on_read_header(error_code ec);
  void after_continue();
  void do_read_body();
  void on_read_body(error_code ec);
  void respond();
  void write_simple(unsigned status, std::string body);
  void on_write(error_code ec);

  void start_generated(std::uint64_t length, bool chunked);
  void do_write_generated();
  void start_echo();
  void do_echo_read();
  void on_echo_read(error_code ec);
  void write_last_piece();

  void start_stream(bool chunked);
  void do_close();
  void do_reset();

  tcp::socket socket_;
  net::steady_timer timer_;
  Shared& shared_;
  std::uint64_t id_;
  std::uint64_t read_generation_ = 0;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::buffer_body>> parser_;
  http::response<http::string_body> simple_;
  http::response<http::buffer_body> streamed_;
  std::optional<http::response_serializer<http::buffer_body>> serializer_;
  Action action_;
  bool head_ = false;
  bool keep_alive_ = true;
  std::uint64_t body_bytes_ = 0;
  std::uint64_t remaining_ = 0;
  std::array<char, piece_size> piece_;
};

}  // namespace sluice::testbackend
