// mark_drained (drained.hpp): the one file that touches Asio's private reactor state.
//
// The flag is epoll_reactor::descriptor_state::try_speculative_, private to the reactor. It is reached
// through the explicit-instantiation rule (access is not checked in the template arguments of an explicit
// instantiation), only for the Boost version this was read against and on the epoll reactor.
#include "proxy/drained.hpp"

#include <cstdint>
#include <mutex>

#include <boost/asio/io_context.hpp>
#include <boost/version.hpp>

#include "log/logger.hpp"

#ifndef SLUICE_MARK_DRAINED
#define SLUICE_MARK_DRAINED 1  // meson passes the build option; other builds get the default
#endif

// kMarkDrainedBoost for the preprocessor.
#define SLUICE_MARK_DRAINED_BOOST 1081

#if SLUICE_MARK_DRAINED && BOOST_VERSION / 100 == SLUICE_MARK_DRAINED_BOOST && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#define SLUICE_HAS_MARK_DRAINED 1
#include <sys/epoll.h>

#include <boost/asio/detail/epoll_reactor.hpp>
#else
#define SLUICE_HAS_MARK_DRAINED 0
#endif

namespace sluice::proxy {

static_assert(kMarkDrainedBoost == SLUICE_MARK_DRAINED_BOOST);

#if SLUICE_HAS_MARK_DRAINED
namespace {

using reactor = boost::asio::detail::epoll_reactor;
using state = reactor::descriptor_state;
using flags_member = bool (state::*)[reactor::max_ops];

// The socket's per-descriptor reactor state sits in basic_socket's protected impl_.
struct socket_access : tcp::socket {
  static reactor::per_descriptor_data& state_of(tcp::socket& s) {
    return (s.*&socket_access::impl_).get_implementation().reactor_data_;
  }
};

flags_member speculative_flags();
template <flags_member M>
struct speculative_access {
  friend flags_member speculative_flags() { return M; }
};
template struct speculative_access<&state::try_speculative_>;

// The epoll registration: which events the reactor asked for, and the epoll descriptor it asked.
using events_member = std::uint32_t state::*;
using mutex_member = boost::asio::detail::conditionally_enabled_mutex state::*;
using epoll_fd_member = int reactor::*;
using reactor_member = reactor* state::*;
events_member registered_events();
mutex_member state_mutex();
epoll_fd_member epoll_fd();
reactor_member owning_reactor();
template <events_member E, mutex_member M, epoll_fd_member F, reactor_member R>
struct registration_access {
  friend events_member registered_events() { return E; }
  friend mutex_member state_mutex() { return M; }
  friend epoll_fd_member epoll_fd() { return F; }
  friend reactor_member owning_reactor() { return R; }
};
template struct registration_access<&state::registered_events_, &state::mutex_, &reactor::epoll_fd_,
                                    &state::reactor_>;

// The events of the descriptor's last readiness report: epoll_reactor::run() keeps them in the state's
// operation part (task_result_), a private base, which a C-style cast may name.
using report_member = unsigned int boost::asio::detail::scheduler_operation::*;
report_member task_result();
template <report_member R>
struct report_access {
  friend report_member task_result() { return R; }
};
template struct report_access<&boost::asio::detail::scheduler_operation::task_result_>;

std::uint32_t last_report(const state* st) {
  const auto* op = (const boost::asio::detail::scheduler_operation*)st;
  return op->*task_result();
}

// The read flag of `socket`'s reactor state, or null when the socket is closed.
bool* read_flag(tcp::socket& socket) {
  auto* st = socket_access::state_of(socket);
  return st ? &(st->*speculative_flags())[reactor::read_op] : nullptr;
}

// A socket just opened is registered with every operation speculative (epoll_reactor::register_descriptor);
// mark_drained must clear the read one and leave it cleared.
DrainedTrick probe() {
  net::io_context ioc{1};
  tcp::socket socket(ioc);
  boost::system::error_code ec;
  socket.open(tcp::v4(), ec);
  if (ec) return DrainedTrick::broken;
  bool* flag = read_flag(socket);
  if (!flag || !*flag) return DrainedTrick::broken;
  *flag = false;
  return *read_flag(socket) ? DrainedTrick::broken : DrainedTrick::active;
}

}  // namespace
#endif

bool mark_drained_expected() { return SLUICE_MARK_DRAINED && BOOST_VERSION / 100 == kMarkDrainedBoost; }

DrainedTrick mark_drained_status() {
#if SLUICE_HAS_MARK_DRAINED
  static const DrainedTrick status = probe();
  return status;
#elif !SLUICE_MARK_DRAINED
  return DrainedTrick::disabled;
#elif BOOST_VERSION / 100 != SLUICE_MARK_DRAINED_BOOST
  return DrainedTrick::other_boost;
#else
  return DrainedTrick::other_reactor;
#endif
}

std::string to_string(DrainedTrick status) {
  switch (status) {
    case DrainedTrick::active: return "active";
    case DrainedTrick::disabled: return "off (build option mark_drained=false)";
    case DrainedTrick::other_boost:
      return "inactive: built with Boost " + std::to_string(BOOST_VERSION / 100000) + "." +
             std::to_string(BOOST_VERSION / 100 % 1000) + ", written for " +
             std::to_string(kMarkDrainedBoost / 1000) + "." + std::to_string(kMarkDrainedBoost % 1000);
    case DrainedTrick::other_reactor: return "inactive: Asio does not use its epoll reactor here";
    case DrainedTrick::broken: return "inactive: the reactor's state is not what it was written against";
  }
  return "?";
}

void log_mark_drained_status() {
  static std::once_flag once;
  std::call_once(once, [] {
    const auto status = mark_drained_status();
    const auto text = "mark_drained (skip the recv() before waiting after a short read): " + to_string(status);
    if (mark_drained_expected() && status != DrainedTrick::active) {
      log::warn(text);
    } else {
      log::info(text);
    }
  });
}

void mark_drained([[maybe_unused]] tcp::socket& socket) {
#if SLUICE_HAS_MARK_DRAINED
  if (mark_drained_status() != DrainedTrick::active) return;
  state* st = socket_access::state_of(socket);
  if (!st) return;
  // A report that said the peer closed (EPOLLRDHUP, when prepare_drained_reads registered it) or failed
  // means the short read may have taken the FIN too: the next read must try recv() and see the end.
  if ((last_report(st) & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) return;
  (st->*speculative_flags())[reactor::read_op] = false;
#endif
}

bool prepare_drained_reads([[maybe_unused]] tcp::socket& socket) {
#if SLUICE_HAS_MARK_DRAINED
  if (mark_drained_status() != DrainedTrick::active || !socket.is_open()) return false;
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  state* st = socket_access::state_of(socket);
  if (ec || !st) return false;
  boost::asio::detail::conditionally_enabled_mutex::scoped_lock lock(st->*state_mutex());
  auto& events = st->*registered_events();
  if (events == 0) return false;  // not registered with epoll (Asio then runs every read as a plain recv)
  if ((events & EPOLLRDHUP) != 0) return true;
  epoll_event ev{};
  ev.events = events | EPOLLRDHUP;
  ev.data.ptr = st;
  if (epoll_ctl((st->*owning_reactor())->*epoll_fd(), EPOLL_CTL_MOD, socket.native_handle(), &ev) != 0) return false;
  events = ev.events;  // Asio's later changes (EPOLLOUT) start from these and keep EPOLLRDHUP
  return true;
#else
  return false;
#endif
}

const void* drained_reads_state([[maybe_unused]] tcp::socket& socket) {
#if SLUICE_HAS_MARK_DRAINED
  state* st = socket_access::state_of(socket);
  if (!st || ((st->*registered_events()) & EPOLLRDHUP) == 0) return nullptr;
  return st;
#else
  return nullptr;
#endif
}

bool short_read_empties([[maybe_unused]] const void* reactor_state) {
#if SLUICE_HAS_MARK_DRAINED
  return (last_report(static_cast<const state*>(reactor_state)) & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0;
#else
  return false;
#endif
}

bool next_read_waits([[maybe_unused]] tcp::socket& socket) {
#if SLUICE_HAS_MARK_DRAINED
  const bool* flag = read_flag(socket);
  return flag && !*flag;
#else
  return false;
#endif
}

void start_drained_read([[maybe_unused]] tcp::socket& socket, [[maybe_unused]] boost::asio::detail::reactor_op* op,
                        [[maybe_unused]] bool is_continuation) {
#if SLUICE_HAS_MARK_DRAINED
  // The reactor from the descriptor's own state: use_service<reactor> would search the io_context's
  // service registry (a lock and type_info comparisons), a tenth of a relayed message's instructions.
  state* st = socket_access::state_of(socket);
  (st->*owning_reactor())->start_op(reactor::read_op, socket.native_handle(), st, op, is_continuation, true);
#endif
}

}  // namespace sluice::proxy
