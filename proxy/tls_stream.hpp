// TLS over a TCP socket with OpenSSL called directly, as nginx does: the stream type of every TLS connection
// (downstream listeners, mesh_tls upstreams, health checks, tunnels, HTTP/2).
//
// Why not Asio's ssl::stream (Beast's ssl_stream): measured on proxy-tls (tests/bench/README.md, session 9),
// sluice spent 46k user-space instructions per keep-alive request against nginx's 37k. 13 % was
// ERR_clear_error, which Asio's engine calls before every SSL call, most of them attempts that end in
// WANT_READ; most of the rest was the layers each record passes: Asio's io_op over a BIO pair (every byte
// copied into and out of the pair), Beast's flat_stream and basic_stream's per-operation timer. Here:
// - bytes read from the socket go into the stream's own input buffer, which OpenSSL reads through a
//   minimal BIO (one copy fewer than the pair);
// - records OpenSSL writes go into an output buffer, sent with one send() per SSL call, so a small response
//   is one record and one syscall; a write completes only once its records are sent (memory stays
//   bounded by what the caller handed in), while a read only tries to send what it produced (reading
//   never waits for the peer to read);
// - the error queue is cleared only when something is in it;
// - timeouts are one lazily moved timer per connection with Beast's semantics (expires_after applies to
//   the directions with no operation pending; when it passes the socket is closed and the pending
//   operation reports beast::error::timeout), armed only while the stream waits on its socket.
//
// One read and one write may be pending at a time, as with any Asio stream (HTTP/2 and tunnels keep both);
// the handshake and shutdown are alone. Renegotiation is off (tls.cpp), so a write never has to read.
// Worker (or control) thread only: the stream, like its socket, belongs to one io_context.
#pragma once

#include <openssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <memory>
#include <utility>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "net/net.hpp"
#include "proxy/drained_read.hpp"

namespace sluice::proxy {

namespace tls_detail {

using clock = std::chrono::steady_clock;

// What an SSL call left to do.
enum class Want { done, read, write, failed };

// A direction's timeout: when it passes while an operation of that direction waits, the socket is closed.
struct Expiry {
  clock::time_point at = clock::time_point::max();
  bool pending = false;
};

// Everything a connection's TLS needs, on the heap so that the stream can move (the BIO points at it) and
// the timer's handler can hold it.
struct Core {
  Core(tcp::socket socket, ssl::context& ctx);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // What an SSL call that returned `ret` left to do (SSL_get_error); on failure `ec` says why.
  Want classify(int ret, boost::system::error_code& ec);
  // Empties the error queue before an SSL call, so that SSL_get_error reads this call's outcome only.
  static void clear_errors();

  bool has_output() const { return out_sent < out_end; }
  // Frees the buffers (ours and OpenSSL's record buffers) when nothing is in them and no read waits; each
  // is made again when next needed.
  void release_buffers();
  // Sends buffered records now. True when all went; false with `ec` clear when the socket is full.
  bool send_output(boost::system::error_code& ec);
  // Room in the input buffer for the next socket read (moves unread bytes to the front when needed).
  net::mutable_buffer input_space();
  // An error from a socket operation, as the caller should see it: a passed timeout is
  // beast::error::timeout, an end of stream before the peer's close_notify is ssl::error::stream_truncated.
  boost::system::error_code socket_error(boost::system::error_code ec) const;

  void begin_wait(Expiry& e);
  static void end_wait(Expiry& e) { e.pending = false; }
  void expires_at(clock::time_point at) {
    if (!read_expiry.pending) read_expiry.at = at;
    if (!write_expiry.pending) write_expiry.at = at;
  }

  beast::tcp_stream next;
  SSL* ssl = nullptr;
  std::unique_ptr<char[]> in;  // bytes read from the socket, [in_begin, in_end) not yet taken by OpenSSL
  std::size_t in_begin = 0;
  std::size_t in_end = 0;
  std::unique_ptr<char[]> out;  // records written by OpenSSL, [out_sent, out_end) not yet sent
  std::size_t out_capacity = 0;
  std::size_t out_sent = 0;
  std::size_t out_end = 0;
  std::unique_ptr<char[]> flat;  // small buffers of one write gathered into one record
  bool reading = false;          // an operation waits for socket input

  net::steady_timer timer;
  Expiry read_expiry;
  Expiry write_expiry;
  clock::time_point armed = clock::time_point::max();  // what the timer's current wait waits for
  unsigned generation = 0;
  bool timed_out = false;
  std::weak_ptr<Core> self;  // for the timer's handler

 private:
  void arm(clock::time_point at);
  void fired(unsigned generation, boost::system::error_code ec);
};

// One TLS operation: call OpenSSL (Step), send what it wrote, wait for the socket as it asks, repeat.
// Step: `int operator()(SSL*, std::size_t& n)` returning the SSL call's result; `static constexpr bool
// sized` whether the operation reports a byte count, `waits_for_output` whether it completes only once the
// records written so far went out (every operation but a read).
template <class Step>
class Op {
 public:
  Op(Core& core, Step step) : c_(&core), step_(std::move(step)) {}

  template <class Self>
  void operator()(Self& self, boost::system::error_code ec = {}, std::size_t got = 0) {
    switch (state_) {
      case State::start:
        break;
      case State::reading:
        c_->reading = false;
        Core::end_wait(c_->read_expiry);
        if (ec) return finish(self, c_->socket_error(ec));
        c_->in_end += got;
        want_ = Want::read;  // call OpenSSL again with the new bytes
        stepped_ = false;
        break;
      case State::sending:
        Core::end_wait(c_->write_expiry);
        if (ec) return finish(self, c_->socket_error(ec));
        break;
      case State::finishing:
        return complete(self);
    }
    for (;;) {
      if (!stepped_) {
        if (step_.empty()) {
          want_ = Want::done;  // nothing for OpenSSL: only records already written to send (async_flush)
        } else {
          Core::clear_errors();
          want_ = c_->classify(step_(c_->ssl, n_), error_);
        }
        stepped_ = true;
      }
      // What OpenSSL wrote goes out before this operation completes or waits for input: a handshake's
      // flight, a request's records. A read only tries: it must not wait for the peer to take our bytes
      // (a peer that sends before it reads would then wait for us forever); a KeyUpdate answer or an alert
      // it produced that does not fit now goes with the next write.
      if (c_->has_output()) {
        boost::system::error_code sec;
        if (!c_->send_output(sec) && Step::waits_for_output) {
          if (sec) return finish(self, c_->socket_error(sec));
          if (want_ == Want::failed) return finish(self, error_);  // an alert that does not fit is dropped
          state_ = State::sending;
          c_->begin_wait(c_->write_expiry);
          c_->next.socket().async_wait(tcp::socket::wait_write, std::move(self));
          return;
        }
      }
      switch (want_) {
        case Want::done:
          return finish(self, {});
        case Want::failed:
          return finish(self, error_);
        case Want::write:  // the BIO takes every write: nothing to wait for but the send above
          stepped_ = false;
          continue;
        case Want::read:
          if (c_->reading) return finish(self, net::error::in_progress);  // a write that must read: not here
          state_ = State::reading;
          c_->reading = true;
          c_->begin_wait(c_->read_expiry);
          // A read that comes back short marks the socket empty, so that the next one waits for readiness
          // instead of trying recv() first (drained_read.hpp; a socket given to prepare_drained_reads).
          async_read_drained(c_->next.socket(), c_->input_space(), std::move(self));
          return;
      }
    }
  }

 private:
  enum class State { start, reading, sending, finishing };

  // Completes now after an asynchronous step; from the initiating call it posts first (a handler never
  // runs inside the call that started its operation).
  template <class Self>
  void finish(Self& self, boost::system::error_code ec) {
    error_ = ec;
    if (state_ == State::start) {
      state_ = State::finishing;
      net::post(std::move(self));
      return;
    }
    complete(self);
  }

  template <class Self>
  void complete(Self& self) {
    if constexpr (Step::sized) {
      self.complete(error_, error_ ? 0 : n_);
    } else {
      self.complete(error_);
    }
  }

  Core* c_;
  Step step_;
  State state_ = State::start;
  Want want_ = Want::done;
  bool stepped_ = false;
  boost::system::error_code error_;
  std::size_t n_ = 0;
};

struct ReadStep {
  static constexpr bool sized = true;
  static constexpr bool waits_for_output = false;
  net::mutable_buffer buffer;
  bool empty() const { return buffer.size() == 0; }
  int operator()(SSL* ssl, std::size_t& n) const { return SSL_read_ex(ssl, buffer.data(), buffer.size(), &n); }
};

struct WriteStep {
  static constexpr bool waits_for_output = true;
  static constexpr bool sized = true;
  net::const_buffer buffer;
  bool empty() const { return buffer.size() == 0; }
  int operator()(SSL* ssl, std::size_t& n) const { return SSL_write_ex(ssl, buffer.data(), buffer.size(), &n); }
};

struct HandshakeStep {
  static constexpr bool waits_for_output = true;
  static constexpr bool sized = false;
  bool empty() const { return false; }
  int operator()(SSL* ssl, std::size_t&) const { return SSL_do_handshake(ssl); }
};

struct FlushStep {
  static constexpr bool waits_for_output = true;
  static constexpr bool sized = false;
  bool empty() const { return true; }
  int operator()(SSL*, std::size_t&) const { return 1; }
};

// Sends close_notify, then waits for the peer's (Asio's semantics: complete once both went).
struct ShutdownStep {
  static constexpr bool waits_for_output = true;
  static constexpr bool sized = false;
  bool empty() const { return false; }
  int operator()(SSL* ssl, std::size_t&) const {
    const int r = SSL_shutdown(ssl);
    return r == 0 ? SSL_shutdown(ssl) : r;
  }
};

// The bytes one write hands OpenSSL: the first buffer when it fills a record by itself, else the buffers
// gathered into `flat` up to one record (Beast's flat_stream did this: a head and a small body become one
// record and one send).
template <class ConstBuffers>
net::const_buffer gather(Core& c, const ConstBuffers& buffers);

}  // namespace tls_detail

class TlsStream {
 public:
  using executor_type = net::any_io_executor;
  using next_layer_type = beast::tcp_stream;
  using clock = std::chrono::steady_clock;

  TlsStream(tcp::socket socket, ssl::context& ctx);
  ~TlsStream();
  TlsStream(TlsStream&&) noexcept = default;
  TlsStream& operator=(TlsStream&&) = delete;

  executor_type get_executor() { return core_->next.get_executor(); }
  beast::tcp_stream& next_layer() { return core_->next; }
  SSL* native_handle() { return core_->ssl; }

  // Beast's basic_stream semantics, for TLS operations: the expiry applies to the operations started after
  // it (a direction with an operation pending keeps its own); when it passes the socket is closed.
  void expires_after(clock::duration d) { core_->expires_at(clock::now() + d); }
  void expires_at(clock::time_point at) { core_->expires_at(at); }
  void expires_never() { core_->expires_at(clock::time_point::max()); }
  // Whether an expiry passed and closed the socket.
  bool timed_out() const { return core_->timed_out; }

  template <class Token>
  auto async_handshake(ssl::stream_base::handshake_type type, Token&& token) {
    if (type == ssl::stream_base::client) {
      SSL_set_connect_state(core_->ssl);
    } else {
      SSL_set_accept_state(core_->ssl);
    }
    return start<void(boost::system::error_code)>(tls_detail::HandshakeStep{}, std::forward<Token>(token));
  }

  template <class Token>
  auto async_shutdown(Token&& token) {
    return start<void(boost::system::error_code)>(tls_detail::ShutdownStep{}, std::forward<Token>(token));
  }

  // Sends the records write_now() could not.
  template <class Token>
  auto async_flush(Token&& token) {
    return start<void(boost::system::error_code)>(tls_detail::FlushStep{}, std::forward<Token>(token));
  }

  // Encrypts all of `buffers` now (records of up to 16 KiB, small buffers gathered) and sends what the
  // socket takes, without waiting: a keep-alive response then costs no trip round the event loop. Returns
  // the plaintext bytes taken, all of them unless `ec` says OpenSSL failed; flushed() says whether every
  // record went, else async_flush() sends the rest. For a caller with no write pending (one writer at a
  // time, as for async_write_some).
  template <class ConstBuffers>
  std::size_t write_now(const ConstBuffers& buffers, boost::system::error_code& ec) {
    auto& c = *core_;
    beast::buffers_suffix<ConstBuffers> rest(buffers);
    std::size_t total = 0;
    while (net::buffer_size(rest) != 0) {
      const net::const_buffer chunk = tls_detail::gather(c, rest);
      std::size_t n = 0;
      tls_detail::Core::clear_errors();
      if (c.classify(SSL_write_ex(c.ssl, chunk.data(), chunk.size(), &n), ec) != tls_detail::Want::done) break;
      rest.consume(n);
      total += n;
    }
    boost::system::error_code sec;
    if (!ec && c.has_output() && !c.send_output(sec) && sec) ec = c.socket_error(sec);
    return total;
  }
  bool flushed() const { return !core_->has_output(); }

  // For a connection that sits idle (a pooled upstream connection nobody took for a while): its buffers go
  // back to the heap until it is used again, ours (40 KiB in, 18 KiB or more out, 16 KiB for gathering a
  // record) and OpenSSL's two record buffers (about 34 KiB). Does nothing while bytes are unread or unsent,
  // or an operation is in flight.
  void release_buffers() { core_->release_buffers(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    net::mutable_buffer first;
    for (auto it = net::buffer_sequence_begin(buffers); it != net::buffer_sequence_end(buffers); ++it) {
      if (net::mutable_buffer b(*it); b.size() != 0) {
        first = b;
        break;
      }
    }
    return start<void(boost::system::error_code, std::size_t)>(tls_detail::ReadStep{first},
                                                                std::forward<Token>(token));
  }

  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return start<void(boost::system::error_code, std::size_t)>(
        tls_detail::WriteStep{tls_detail::gather(*core_, buffers)}, std::forward<Token>(token));
  }

 private:
  template <class Signature, class Step, class Token>
  auto start(Step step, Token&& token) {
    return net::async_compose<Token, Signature>(tls_detail::Op<Step>(*core_, std::move(step)), token,
                                                core_->next.socket());
  }

  std::shared_ptr<tls_detail::Core> core_;
};

namespace tls_detail {

inline constexpr std::size_t kRecordPlaintext = 16384;

template <class ConstBuffers>
net::const_buffer gather(Core& c, const ConstBuffers& buffers) {
  auto it = net::buffer_sequence_begin(buffers);
  const auto end = net::buffer_sequence_end(buffers);
  while (it != end && net::const_buffer(*it).size() == 0) ++it;
  if (it == end) return {};
  const net::const_buffer first(*it);
  auto next = it;
  ++next;
  while (next != end && net::const_buffer(*next).size() == 0) ++next;
  if (first.size() >= kRecordPlaintext || next == end) return first;
  if (!c.flat) c.flat = std::make_unique<char[]>(kRecordPlaintext);
  std::size_t n = 0;
  for (; it != end && n < kRecordPlaintext; ++it) {
    const net::const_buffer b(*it);
    const std::size_t take = std::min(b.size(), kRecordPlaintext - n);
    if (take == 0) continue;  // an empty buffer may have no data pointer at all
    std::memcpy(c.flat.get() + n, b.data(), take);
    n += take;
  }
  return {c.flat.get(), n};
}

}  // namespace tls_detail

}  // namespace sluice::proxy
