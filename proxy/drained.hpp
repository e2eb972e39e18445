// Telling Asio's epoll reactor that a socket has just been read dry, so that the next read on it waits for
// readiness instead of trying recv() first.
//
// Why: after a readiness event, Asio tries every new read on that socket with a recv() before waiting, and
// only an EOF stops that (Asio 1.26: a short read is not taken as "exhausted"). A proxy reads a request,
// forwards it, and reads again when nothing can be there yet, so every proxied request paid one recv()
// returning EAGAIN on each side: 3.7 recvmsg per request instead of 2 (perf stat, c64). The public ways to
// wait without trying (async_wait, or a read queued behind one) cost an epoll_ctl each instead.
//
// The flag is private to the reactor (epoll_reactor::descriptor_state::try_speculative_). It is reached
// through the explicit-instantiation rule (access is not checked in the template arguments of an explicit
// instantiation), only for the Boost version this was read against and on the epoll reactor; elsewhere
// mark_drained() does nothing and reads try first, as Asio does by default.
#pragma once

#include <boost/version.hpp>

#include "net/net.hpp"

#if BOOST_VERSION / 100 == 1081 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define SLUICE_HAS_MARK_DRAINED 1
#include <boost/asio/detail/epoll_reactor.hpp>
#else
#define SLUICE_HAS_MARK_DRAINED 0
#endif

namespace sluice::proxy {

#if SLUICE_HAS_MARK_DRAINED
namespace drained_detail {

using reactor = boost::asio::detail::epoll_reactor;
using state = reactor::descriptor_state;
using flags_member = bool (state::*)[reactor::max_ops];

// The socket's per-descriptor reactor state sits in basic_socket's protected impl_.
struct socket_access : tcp::socket {
  static reactor::per_descriptor_data state_of(tcp::socket& s) {
    return (s.*&socket_access::impl_).get_implementation().reactor_data_;
  }
};

flags_member speculative_flags();
template <flags_member M>
struct speculative_access {
  friend flags_member speculative_flags() { return M; }
};
template struct speculative_access<&state::try_speculative_>;

}  // namespace drained_detail
#endif

// Call on the io_context's thread in the very handler whose read came back short (fewer bytes than
// asked), or before the peer has been asked anything; never after a co_await. A readiness event processed
// in between would be forgotten: bytes that arrived meanwhile would wait, unread, for the peer's next ones.
// An event that comes later only costs the recv() this saves. Plain TCP sockets; a closed one is skipped.
inline void mark_drained([[maybe_unused]] tcp::socket& socket) {
#if SLUICE_HAS_MARK_DRAINED
  if (auto* state = drained_detail::socket_access::state_of(socket)) {
    (state->*drained_detail::speculative_flags())[drained_detail::reactor::read_op] = false;
  }
#endif
}

}  // namespace sluice::proxy
