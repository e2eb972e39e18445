// A connection's byte stream: plain TCP or TLS over TCP, chosen per connection.
// Async operations go through visit(), so each coroutine step is written once
// for both kinds (`co_await s.visit([&](auto& st) { return st.async_...(..., use_nothrow); })`).
#pragma once

#include <memory>
#include <type_traits>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "net/net.hpp"
#include "proxy/deadline.hpp"
#include "proxy/drained.hpp"
#include "proxy/recycler.hpp"
#include "proxy/tls_stream.hpp"

namespace sluice::proxy {

// Completion token for coroutines: errors come back as values, never as exceptions. Asio and Beast take the
// memory of each pending operation from the handler's allocator, by default Asio's per-thread cache of two
// blocks: enough for one connection, but with 64 connections in flight most operations went to malloc
// (about two per request). Bound to the recycler (proxy/recycler.hpp), they reuse their blocks instead.
// Not const: Asio 1.81's async_result for an allocator_binder takes the token by non-const reference (it is
// only ever copied from).
inline auto use_nothrow = net::bind_allocator(RecyclingAllocator<void>(), net::as_tuple(net::use_awaitable));

class Stream {
 public:
  using plain_type = beast::tcp_stream;
  using tls_type = TlsStream;

  explicit Stream(tcp::socket socket) : v_(std::in_place_index<0>, std::move(socket)) {}
  // TLS over `socket` (proxy/tls_stream.hpp); the stream keeps `ctx` alive (a reloaded certificate never
  // pulls it from under us).
  Stream(tcp::socket socket, std::shared_ptr<ssl::context> ctx)
      : ctx_(std::move(ctx)), v_(std::in_place_index<1>, std::move(socket), *ctx_) {}

  bool is_tls() const { return v_.index() == 1; }

  beast::tcp_stream& transport() {
    return is_tls() ? std::get<1>(v_).next_layer() : std::get<0>(v_);
  }
  tls_type* tls() { return is_tls() ? &std::get<1>(v_) : nullptr; }

  template <class F>
  decltype(auto) visit(F&& f) { return std::visit(std::forward<F>(f), v_); }

  // As visit(), but a plain TCP stream is passed as its socket: Beast's basic_stream only adds its timeout
  // machinery around each operation (the HTTP/1.1 session uses set_deadline instead), and it hands Asio a
  // read's buffer as a sequence, read with recvmsg(), where one buffer is one recv(). TLS goes through the
  // TLS stream as with visit().
  template <class F>
  decltype(auto) visit_socket(F&& f) {
    return std::visit(
        [&](auto& s) -> decltype(auto) {
          if constexpr (std::is_same_v<std::decay_t<decltype(s)>, plain_type>) {
            return f(s.socket());
          } else {
            return f(s);
          }
        },
        v_);
  }

  // Reads some bytes into `buffer` (visit_socket).
  template <class Token>
  auto async_read_some(net::mutable_buffer buffer, Token& token) {
    return visit_socket([&](auto& s) { return s.async_read_some(buffer, token); });
  }

  // Writes all of `data` (valid until `done` runs): first without waiting (plain TCP: one non-blocking
  // send, the socket being non-blocking; TLS: TlsStream::write_now), and only what the socket did not take
  // through an asynchronous write under `timeout`, whose end calls done(error). Returns true when all of it
  // went at once; `done` is not called then, and the caller goes on without a trip round the event loop
  // (an asynchronous write that completes at once still costs one, and its timer's cancellation another).
  // One writer at a time, as for any write.
  template <class Done>
  bool write_or_start(net::const_buffer data, std::chrono::steady_clock::duration timeout, Done&& done) {
    boost::system::error_code ec;
    std::size_t taken = 0;
    if (auto* t = tls()) {
      taken = t->write_now(data, ec);
      if (!ec && taken == data.size() && t->flushed()) return true;
    } else {
      taken = transport().socket().write_some(data, ec);
      if (!ec && taken == data.size()) return true;
    }
    // A failure here shows again in the asynchronous write, which reports it.
    expires_after(timeout);
    auto handler = net::bind_allocator(RecyclingAllocator<void>(),
                                       [d = std::forward<Done>(done)](boost::system::error_code e, std::size_t = 0) mutable {
                                         d(e);
                                       });
    if (auto* t = tls(); t && !ec && taken == data.size()) {
      t->async_flush(std::move(handler));  // every byte taken; records remain to send
    } else {
      visit([&](auto& st) { net::async_write(st, net::buffer(data + taken), std::move(handler)); });
    }
    return false;
  }

  // The next read waits for readiness without trying recv() first (proxy/drained.hpp, whose rule applies:
  // right after a short read, or before the peer was asked anything). TLS reads are left as they are. A
  // no-op where the trick is inactive (drained.hpp).
  void mark_drained() {
    if (!is_tls()) proxy::mark_drained(std::get<0>(v_).socket());
  }

  // Beast's timeouts for a step (connect, TLS handshake, HTTP/2, tunnels, health checks): the expiry applies
  // to the operations started after it; when it passes the socket is closed and they report
  // beast::error::timeout. Plain TCP: the transport's own (basic_stream's timer per operation); TLS: the TLS
  // stream's, which does its own I/O on the socket.
  void expires_after(std::chrono::steady_clock::duration d) {
    if (auto* t = tls()) return t->expires_after(d);
    transport().expires_after(d);
  }
  void expires_at(std::chrono::steady_clock::time_point at) {
    if (auto* t = tls()) return t->expires_at(at);
    transport().expires_at(at);
  }
  void expires_never() {
    if (auto* t = tls()) return t->expires_never();
    transport().expires_never();
  }

  // The HTTP/1.1 session's deadlines (proxy/deadline.hpp): one lazily moved timer per connection instead
  // of Beast's timer wait per operation. Set before a step, cleared after it; when one passes the socket is
  // closed and deadline_passed() says so (where Beast's operations say error::timeout). A TLS stream keeps
  // its timeouts that way already: there these are its expiry.
  void set_deadline(std::chrono::steady_clock::time_point at) {
    if (auto* t = tls()) return t->expires_at(at);
    deadline_.set(transport(), at);
  }
  void set_deadline_after(std::chrono::steady_clock::duration d) {
    set_deadline(std::chrono::steady_clock::now() + d);
  }
  void clear_deadline() {
    if (auto* t = tls()) return t->expires_never();
    deadline_.clear();
  }
  bool deadline_passed() {
    if (auto* t = tls()) return t->timed_out();
    return deadline_.passed();
  }

 private:
  std::shared_ptr<ssl::context> ctx_;
  std::variant<plain_type, tls_type> v_;
  Deadline deadline_;  // declared last: destroyed first, while the stream it names is still there
};

}  // namespace sluice::proxy
