// Writes towards upstreams, gathered while a worker handles one batch of ready connections and sent
// together after it, the way HAProxy reads a whole epoll batch before it sends anything.
//
// Why: every send to a backend wakes its thread. Sent one at a time, as each client request is read, a
// single-threaded backend is woken (and on a busy machine it preempts the proxy) about once per request;
// sent together, it wakes once and finds them all ready. On the 2-core c64 benchmark the backends' context
// switches per request went from about 0.6 to 0.1-0.4, and the proxy's own CPU per request dropped by 1-2 us.
//
// Only the worker's thread touches a batch; it takes no lock.
#pragma once

#include <array>
#include <cstddef>
#include <vector>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>

#include "net/net.hpp"

namespace sluice::proxy {

class WriteBatch {
 public:
  using Buffers = std::array<net::const_buffer, 5>;

  explicit WriteBatch(net::io_context& ioc) : ioc_(ioc) {}
  WriteBatch(const WriteBatch&) = delete;
  WriteBatch& operator=(const WriteBatch&) = delete;

  // Writes what the socket takes of `buffers` with one non-blocking write_some, after the handlers already
  // queued on the io_context have run, then completes with (error, bytes written). The count may be short
  // and the error would_block: the caller writes the rest itself. `socket` must be a plain TCP socket in
  // non-blocking mode; it and `buffers` must outlive the operation (they live in the awaiting coroutine).
  // A socket closed meanwhile completes with its error. Worker thread only.
  template <class Token>
  auto async_write_some(tcp::socket& socket, const Buffers& buffers, Token&& token) {
    return net::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, tcp::socket* s, const Buffers* b) { add(Entry{s, b, {}, 0, Handler(std::move(handler))}); },
        token, &socket, &buffers);
  }

  // Writes waiting for the next flush.
  std::size_t pending() const { return pending_.size(); }

 private:
  using Handler = net::any_completion_handler<void(boost::system::error_code, std::size_t)>;
  struct Entry {
    tcp::socket* socket;
    const Buffers* buffers;
    boost::system::error_code ec;
    std::size_t written;
    Handler handler;
  };

  void add(Entry entry);
  void flush();

  net::io_context& ioc_;
  bool flush_posted_ = false;
  std::vector<Entry> pending_;
  std::vector<Entry> flushing_;  // kept to reuse its capacity
};

}  // namespace sluice::proxy
