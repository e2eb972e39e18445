// async_read_drained: a socket read that tells Asio's epoll reactor when a short read emptied the socket,
// so that the next read waits for readiness instead of trying recv() first and getting EAGAIN.
//
// Why not mark_drained() (drained.hpp) after an ordinary read: that flag is cleared in the completion
// handler, later than the recv() that emptied the socket. If the peer's FIN was already queued behind the
// last bytes, the recv() consumed it too (Linux returns the bytes and the next recv() returns 0), its
// readiness event has been reported already, and no other event will come: a read that waits would hang.
// A tunnel meets exactly that at the end of every WebSocket close handshake.
//
// Here the decision is made inside the reactor, in the operation's perform step, right after the recv():
// a short read returns Asio's own `done_and_exhausted` (which the reactor turns into "wait first" under its
// lock, in the same step) unless the socket's last readiness report carried EPOLLRDHUP, EPOLLHUP or
// EPOLLERR. For that report to say so, prepare_drained_reads() adds EPOLLRDHUP to the socket's epoll
// registration (once). A FIN that arrives after that report raises a new event, which wakes the waiting
// read; one that arrived before it is in the report, and the read is tried as usual. This is how nginx
// decides a short read drained a socket (ngx_unix_recv with EPOLLRDHUP).
//
// The private parts of Asio it needs are reached in drained.cpp only; where the trick is inactive
// (drained.hpp: other Boost, other reactor, build option off) async_read_drained is async_read_some.
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <type_traits>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/version.hpp>

#include "net/net.hpp"
#include "proxy/drained.hpp"

#if BOOST_VERSION / 100 == 1081
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#define SLUICE_HAS_DRAINED_READ 1
#else
#define SLUICE_HAS_DRAINED_READ 0
#endif

namespace sluice::proxy {

#if SLUICE_HAS_DRAINED_READ
namespace drained_detail {

namespace ad = boost::asio::detail;

// A copy of Asio's reactive_socket_recv_op (one buffer, stream socket) with the perform step above, for a
// plain callable. No handler_work: the handler has no executor of its own, and the socket's is the worker's
// io_context, on whose thread the completion runs, so Asio's handler_work would only copy the socket's
// any_io_executor to find that out (5 % of a relayed WebSocket message's instructions).
template <class Handler>
class recv_op : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(recv_op);

  recv_op(int fd, const void* reactor_state, net::mutable_buffer buffer, Handler& handler)
      : ad::reactor_op(boost::system::error_code(), &recv_op::do_perform, &recv_op::do_complete),
        fd_(fd),
        reactor_state_(reactor_state),
        buffer_(buffer),
        handler_(std::move(handler)) {}

  // recv() itself rather than Asio's non_blocking_recv1, whose error_code plumbing is most of the cost of
  // a read that succeeds; the outcomes are Asio's: bytes, eof on 0, EINTR retried, EAGAIN waits.
  static status do_perform(ad::reactor_op* base) {
    auto* o = static_cast<recv_op*>(base);
    ssize_t n;
    do {
      n = ::recv(o->fd_, o->buffer_.data(), o->buffer_.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      o->bytes_transferred_ = static_cast<std::size_t>(n);
      if (o->bytes_transferred_ < o->buffer_.size() && short_read_empties(o->reactor_state_)) {
        return done_and_exhausted;
      }
      return done;
    }
    if (n == 0) {
      o->ec_ = net::error::eof;
      return done_and_exhausted;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;  // wait for readiness
    o->ec_ = boost::system::error_code(errno, boost::asio::error::get_system_category());
    return done;
  }

  // owner null: the io_context is being destroyed; the operation is freed without running the handler.
  static void do_complete(void* owner, ad::operation* base, const boost::system::error_code&, std::size_t) {
    auto* o = static_cast<recv_op*>(base);
    ptr p = {std::addressof(o->handler_), o, o};
    // The handler is moved out before the operation's memory is freed, as in Asio's own operations.
    Handler handler(std::move(o->handler_));
    const boost::system::error_code ec = o->ec_;
    const std::size_t n = o->bytes_transferred_;
    p.h = std::addressof(handler);
    p.reset();
    if (owner) {
      ad::fenced_block b(ad::fenced_block::half);
      handler(ec, n);
    }
  }

 private:
  int fd_;
  const void* reactor_state_;
  net::mutable_buffer buffer_;
  Handler handler_;
};

}  // namespace drained_detail
#endif

// Reads some bytes from `socket` like socket.async_read_some(buffer, handler), and when the read comes back
// short and the socket reported no end of stream, the next read on it waits for readiness without trying
// recv() first. Needs prepare_drained_reads(socket) once (which also makes the socket non-blocking);
// without it, or where the trick is inactive, this is async_read_some. `handler` is a plain callable
// `void(error_code, size_t)` without an executor of its own (a lambda): it runs on the socket's thread,
// and the socket's executor must be its io_context's. The operation is not cancellable by a cancellation
// slot: closing the socket ends it. Worker thread.
template <class Handler>
void async_read_drained(tcp::socket& socket, net::mutable_buffer buffer, Handler handler) {
  static_assert(std::is_same_v<boost::asio::associated_executor_t<Handler, tcp::socket::executor_type>,
                               tcp::socket::executor_type>,
                "async_read_drained: the handler runs on the socket's own executor");
#if SLUICE_HAS_DRAINED_READ
  if (const void* state = drained_reads_state(socket)) {
    using op = drained_detail::recv_op<Handler>;
    const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
    typename op::ptr p = {std::addressof(handler), op::ptr::allocate(handler), nullptr};
    p.p = new (p.v) op(socket.native_handle(), state, buffer, handler);
    start_drained_read(socket, p.p, is_continuation);
    p.v = p.p = nullptr;
    return;
  }
#endif
  socket.async_read_some(buffer, std::move(handler));
}

}  // namespace sluice::proxy
