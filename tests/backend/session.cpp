#include "tests/backend/session.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <algorithm>

namespace sluice::testbackend {

namespace {

constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

// One piece of every generated body; its size is a multiple of 26 so that
// consecutive pieces continue generated_byte()'s pattern.
constexpr std::size_t pattern_size = 26 * 2520;

const std::array<char, pattern_size>& pattern() {
  static const auto bytes = [] {
    std::array<char, pattern_size> out{};
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = generated_byte(i);
    return out;
  }();
  return bytes;
}

bool status_without_body(unsigned status) { return status == 204 || status == 304; }

}  // namespace

Session::Session(tcp::socket socket, Shared& shared, std::uint64_t id)
    : socket_(std::move(socket)), timer_(socket_.get_executor()), shared_(shared), id_(id) {}

void Session::run() {
  net::post(socket_.get_executor(), [self = shared_from_this()] { self->do_read_header(); });
}

void Session::do_read_header() {
  parser_.emplace();
  parser_->header_limit(header_limit);
  parser_->body_limit(boost::none);
  body_bytes_ = 0;
  const auto generation = ++read_generation_;
  if (shared_.idle_timeout.count() > 0) {
    timer_.expires_after(shared_.idle_timeout);
    timer_.async_wait([self = shared_from_this(), generation](error_code ec) {
      if (!ec && generation == self->read_generation_) self->do_close();
    });
  }
  http::async_read_header(socket_, buffer_, *parser_,
                          [self = shared_from_this()](error_code ec, std::size_t) {
                            self->on_read_header(ec);
                          });
}

void Session::on_read_header(error_code ec) {
  ++read_generation_;  // a pending idle timer no longer applies
  if (ec) return do_close();
  timer_.cancel();

  const auto& request = parser_->get();
  action_ = parse_action(request.target());
  if (const unsigned code = shared_.status_override.load(std::memory_order_relaxed);
      code != 0 && action_.kind != Action_kind::admin_status) {
    action_ = Action{Action_kind::status, code};
  }
  head_ = request.method() == http::verb::head;
  keep_alive_ = request.keep_alive();

  if (action_.kind == Action_kind::reset) return do_reset();
  if (action_.kind == Action_kind::drop) return do_close();

  // A client that asked for 100-continue waits (a while) for it before sending
  // the body, as RFC 9110 section 10.1.1 lets it.
  if (!parser_->is_done() && beast::iequals(request[http::field::expect], "100-continue")) {
    return net::async_write(socket_, net::buffer(continue_line.data(), continue_line.size()),
                            [self = shared_from_this()](error_code ec, std::size_t) {
                              if (ec) return self->do_close();
                              self->after_continue();
                            });
  }
  after_continue();
}

void Session::after_continue() {
  if (action_.kind == Action_kind::echo && !head_) return start_echo();
  if (!parser_->is_done()) return do_read_body();
  respond();
}

void Session::do_read_body() {
  auto& body = parser_->get().body();
  body.data = piece_.data();
  body.size = piece_.size();
  http::async_read_some(socket_, buffer_, *parser_,
                        [self = shared_from_this()](error_code ec, std::size_t) {
                          self->on_read_body(ec);
                        });
}

void Session::on_read_body(error_code ec) {
  if (ec == http::error::need_buffer) ec = {};
  if (ec) return do_close();
  body_bytes_ += piece_.size() - parser_->get().body().size;
  if (!parser_->is_done()) return do_read_body();
  respond();
}

void Session::respond() {
  switch (action_.kind) {
    case Action_kind::delay:
      timer_.expires_after(std::chrono::milliseconds(action_.number));
      return timer_.async_wait([self = shared_from_this()](error_code ec) {
        if (ec) return self->do_close();
        self->write_simple(200, self->shared_.name + "\n");
      });
    case Action_kind::sink:
      return write_simple(200, std::to_string(body_bytes_) + "\n");
    case Action_kind::status: {
      const auto code = static_cast<unsigned>(action_.number);
      return write_simple(code, "status " + std::to_string(code) + " from " + shared_.name + "\n");
    }
    case Action_kind::headers: {
      std::string text;
      for (const auto& field : parser_->get()) {
        text.append(field.name_string()).append(": ").append(field.value()).append("\n");
      }
      return write_simple(200, std::move(text));
    }
    case Action_kind::close:
      keep_alive_ = false;
      return write_simple(200, shared_.name + "\n");
    case Action_kind::conn:
      return write_simple(200, std::to_string(id_) + "\n");
    case Action_kind::admin_status:
      shared_.status_override.store(static_cast<unsigned>(action_.number));
      return write_simple(200, "status override " + std::to_string(action_.number) + "\n");
    case Action_kind::bad:
      return write_simple(400, "bad request target\n");
    case Action_kind::bytes:
    case Action_kind::chunked:
      return start_generated(action_.number, action_.kind == Action_kind::chunked);
    case Action_kind::echo:  // HEAD /echo: nothing to echo
    case Action_kind::hello:
    case Action_kind::reset:
    case Action_kind::drop:
      break;
  }
  write_simple(200, shared_.name + "\n");
}

void Session::write_simple(unsigned status, std::string body) {
  simple_ = {};
  simple_.version(parser_->get().version());
  simple_.result(status);
  simple_.set("X-Backend", shared_.name);
  if (!status_without_body(status)) {
    simple_.set(http::field::content_type, "text/plain");
    simple_.content_length(body.size());
    if (!head_) simple_.body() = std::move(body);
  }
  simple_.keep_alive(keep_alive_);
  http::async_write(socket_, simple_, [self = shared_from_this()](error_code ec, std::size_t) {
    self->on_write(ec);
  });
}

void Session::on_write(error_code ec) {
  if (ec || !keep_alive_) return do_close();
  do_read_header();
}

void Session::start_stream(bool chunked) {
  streamed_ = {};
  streamed_.version(parser_->get().version());
  streamed_.result(http::status::ok);
  streamed_.set("X-Backend", shared_.name);
  streamed_.set(http::field::content_type, "application/octet-stream");
  streamed_.keep_alive(keep_alive_);
  if (chunked) streamed_.chunked(true);
  streamed_.body().data = nullptr;
  streamed_.body().more = true;
  serializer_.emplace(streamed_);
}

void Session::start_generated(std::uint64_t length, bool chunked) {
  if (head_) {
    // A HEAD answer carries the length a GET would get (chunked or not).
    simple_ = {};
    simple_.version(parser_->get().version());
    simple_.set("X-Backend", shared_.name);
    simple_.content_length(length);
    simple_.keep_alive(keep_alive_);
    return http::async_write(socket_, simple_,
                             [self = shared_from_this()](error_code ec, std::size_t) {
                               self->on_write(ec);
                             });
  }
  start_stream(chunked);
  if (!chunked) streamed_.content_length(length);
  remaining_ = length;
  http::async_write_header(socket_, *serializer_,
                           [self = shared_from_this()](error_code ec, std::size_t) {
                             if (ec) return self->do_close();
                             self->do_write_generated();
                           });
}

void Session::do_write_generated() {
  if (remaining_ == 0) return write_last_piece();
  const auto size = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, pattern_size));
  remaining_ -= size;
  auto& body = streamed_.body();
  body.data = const_cast<char*>(pattern().data());  // only read by the serializer
  body.size = size;
  body.more = true;
  http::async_write(socket_, *serializer_, [self = shared_from_this()](error_code ec, std::size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return self->do_close();
    self->do_write_generated();
  });
}

void Session::start_echo() {
  start_stream(true);
  http::async_write_header(socket_, *serializer_,
                           [self = shared_from_this()](error_code ec, std::size_t) {
                             if (ec) return self->do_close();
                             self->do_echo_read();
                           });
}

void Session::do_echo_read() {
  if (parser_->is_done()) return write_last_piece();
  auto& body = parser_->get().body();
  body.data = piece_.data();
  body.size = piece_.size();
  http::async_read_some(socket_, buffer_, *parser_,
                        [self = shared_from_this()](error_code ec, std::size_t) {
                          self->on_echo_read(ec);
                        });
}

void Session::on_echo_read(error_code ec) {
  if (ec == http::error::need_buffer) ec = {};
  if (ec) return do_close();
  const std::size_t size = piece_.size() - parser_->get().body().size;
  if (size == 0) return do_echo_read();
  body_bytes_ += size;
  auto& body = streamed_.body();
  body.data = piece_.data();
  body.size = size;
  body.more = true;
  http::async_write(socket_, *serializer_, [self = shared_from_this()](error_code ec, std::size_t) {
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return self->do_close();
    self->do_echo_read();
  });
}

void Session::write_last_piece() {
  auto& body = streamed_.body();
  body.data = nullptr;
  body.size = 0;
  body.more = false;
  http::async_write(socket_, *serializer_, [self = shared_from_this()](error_code ec, std::size_t) {
    self->on_write(ec);
  });
}

void Session::do_close() {
  error_code ignored;
  timer_.cancel();
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
}

void Session::do_reset() {
  error_code ignored;
  timer_.cancel();
  // Linger 0 makes close() send a RST instead of a FIN.
  socket_.set_option(net::socket_base::linger(true, 0), ignored);
  socket_.close(ignored);
}

}  // namespace sluice::testbackend
