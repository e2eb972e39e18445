// A connection's deadline for the HTTP/1.1 session's reads and writes, kept with one lazily moved timer
// instead of a timer operation per read or write.
//
// Why: Beast's basic_stream arms a timer wait for every read and write under expires_after() and cancels
// it when the operation completes. Each cancel queues the wait's handler (an allocation when many
// connections are in flight, a handler run, and at low load an extra non-blocking epoll_wait), so every
// proxied request paid four of them, about a tenth of sluice's user-space instructions per request
// (tests/bench/README.md, "cost per request"). Here setting a deadline is a clock read and a store: the
// timer waits for the earliest deadline it was given, and when it fires with the deadline moved later it
// waits again (once per timeout period per connection, not per request). Only a deadline earlier than the
// one the timer waits for re-arms it.
//
// Semantics kept from Beast's: a deadline covers the operations started while it is set; when it passes
// the socket is closed (the pending operation completes with an error) and passed() says so. Callers clear
// it when the step is over, as Beast's timeout ends with its operation, so that a connection idle between
// steps (in the upstream pool, or waiting for the upstream while the client's deadline is not running) is
// never closed by it.
//
// Worker thread only. The shared state outlives the owner while a wait is pending (its handler holds it);
// the owner's destructor detaches it.
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "net/net.hpp"

namespace sluice::proxy {

class Deadline {
 public:
  using clock = std::chrono::steady_clock;

  Deadline() = default;
  ~Deadline();
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;
  // A moved Deadline starts unset: the state names the stream it closes, which moved too. Only done before
  // a stream's first operation (a Stream is built, then moved into its owner).
  Deadline(Deadline&&) noexcept {}
  Deadline& operator=(Deadline&&) = delete;

  // Operations on `stream` from now on end by `at`. Also makes sure Beast's own timeouts on the stream are
  // off (another user of the stream, HTTP/2 or a health check, may have set one): they would close it at a
  // stale expiry.
  void set(beast::tcp_stream& stream, clock::time_point at);
  void set_after(beast::tcp_stream& stream, clock::duration d) { set(stream, clock::now() + d); }
  // The step is over: no deadline until the next set(). The timer, if waiting, finds nothing to do.
  void clear() {
    if (state_) state_->deadline = clock::time_point::max();
  }
  // Whether the last deadline set passed (and closed the socket).
  bool passed() const { return state_ && state_->passed; }

 private:
  struct State {
    explicit State(beast::tcp_stream& s) : stream(&s), timer(s.get_executor()) {}
    beast::tcp_stream* stream;  // null once the owner is gone
    net::steady_timer timer;
    clock::time_point deadline = clock::time_point::max();
    clock::time_point armed = clock::time_point::max();  // what the current wait waits for
    bool waiting = false;
    bool passed = false;
    unsigned generation = 0;  // of the current wait: a cancelled or superseded wait's handler does nothing
  };
  static void arm(const std::shared_ptr<State>& s, clock::time_point at);
  static void fired(const std::shared_ptr<State>& s, unsigned generation, boost::system::error_code ec);

  std::shared_ptr<State> state_;
};

}  // namespace sluice::proxy
