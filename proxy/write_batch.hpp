// Writes towards upstreams, gathered while a worker handles one batch of ready connections and sent
// together after it, the way HAProxy reads a whole epoll batch before it sends anything.
//
// Why: every send to a backend wakes its thread. Sent one at a time, as each client request is read, a
// single-threaded backend is woken (and on a busy machine it preempts the proxy) about once per request;
// sent together, it wakes once and finds them all ready. What it saved when measured: README.md,
// "Benchmarks".
//
// What it relies on, each checked by tests/proxy/write_batch_test.cpp:
// - Asio's queueing order: a handler posted from a handler runs after every handler already queued, and
//   the completions of one epoll_wait are all queued before the first of them runs. So the flush posted by
//   the first write of a batch of ready connections runs after the others' requests have joined it.
//   Were that order to change, every write would still go out and complete, only without the batching.
// - Raw pointers held across that post: the socket and the buffers stay where the caller keeps them until
//   the handler runs. The proxy's caller is a coroutine that co_awaits the write: its frame holds both,
//   and the completion handler owns the frame, so neither can go before the handler is called or
//   destroyed (destroying a batch with writes pending destroys their handlers unrun; the pointers are not
//   touched then). A socket closed meanwhile is still there, and its write fails with its error.
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
  // non-blocking mode with no other operation in flight; it and `buffers` must stay where they are until
  // the handler is called or destroyed (as a co_awaiting coroutine's locals do: see above). A socket closed
  // meanwhile completes with its error. Worker thread only.
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
