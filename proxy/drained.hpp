// Telling Asio's epoll reactor that a socket has just been read dry, so that the next read on it waits for
// readiness instead of trying recv() first.
//
// Why: after a readiness event, Asio tries every new read on that socket with a recv() before waiting, and
// only an EOF stops that (Asio 1.26: a short read is not taken as "exhausted"). A proxy reads a request,
// forwards it, and reads again when nothing can be there yet, so every proxied request would pay one recv()
// returning EAGAIN on each side. The public ways to wait without trying (async_wait, or a read queued
// behind one) cost an epoll_ctl each instead. What it saved when measured: README.md, "Benchmarks".
//
// The trick reaches into Asio's private reactor state, which is why all of it lives in drained.cpp: it is
// compiled in only for the Boost version it was read against (kMarkDrainedBoost), on the epoll reactor,
// and with the build option `mark_drained` on (meson_options.txt). Elsewhere mark_drained() does nothing
// and reads try recv() first, as Asio does by default; mark_drained_status() says which, and the proxy logs
// it once at startup. tests/proxy/drained_test.cpp fails when the build's Boost is the targeted one, the
// option is on, and the trick is nonetheless inactive.
#pragma once

#include <string>

#include "net/net.hpp"

namespace boost::asio::detail {
class reactor_op;
}

namespace sluice::proxy {

// BOOST_VERSION / 100 of the Asio whose epoll_reactor::descriptor_state this was written against (1.81).
inline constexpr int kMarkDrainedBoost = 1081;

enum class DrainedTrick {
  active,          // compiled in, and a probe socket showed it clearing the reactor's flag
  disabled,        // the build option mark_drained is off
  other_boost,     // the build's Boost is not kMarkDrainedBoost: the private layout is unknown
  other_reactor,   // not Asio's epoll reactor (io_uring by default, or not Linux)
  broken,          // compiled in, but the probe did not see the flag it expects: the layout moved
};

// Whether mark_drained() is meant to work in this build: the option is on and Boost is the targeted one.
// (The reactor is not part of it: on Linux with this Boost, a build that is not on epoll is a surprise.)
bool mark_drained_expected();

// Whether mark_drained() works here. Checked once per process, on a probe socket of a private io_context
// (no network): the reactor must have registered it as speculative, and mark_drained() must clear that.
// Any thread.
DrainedTrick mark_drained_status();
std::string to_string(DrainedTrick status);

// Logs mark_drained_status() once per process: info when it is as expected, warn when it was expected and
// is not. Any thread.
void log_mark_drained_status();

// Call on the io_context's thread in the very handler whose read came back short (fewer bytes than
// asked), or before the peer has been asked anything; never after a co_await. A short read may also have
// taken the peer's FIN (bytes and FIN in one readiness report): on a socket given to
// prepare_drained_reads() the report says so (EPOLLRDHUP) and the flag is left alone, so the next read
// sees the end at once; on another socket such a read waits for the idle timeout. A readiness event processed
// in between would be forgotten: bytes that arrived meanwhile would wait, unread, for the peer's next ones.
// An event that comes later only costs the recv() this saves. Plain TCP sockets; a closed one is skipped.
// Does nothing unless mark_drained_status() is `active`.
void mark_drained(tcp::socket& socket);

// For async_read_drained (drained_read.hpp), which explains the scheme. Worker thread, plain TCP sockets.
//
// Registers `socket` for EPOLLRDHUP as well (one epoll_ctl) and makes it non-blocking, so that reads may
// tell a short read that emptied the socket from one that also took the peer's FIN. Returns whether
// async_read_drained will use that (false where mark_drained_status() is not `active`, or the socket is
// closed or not registered with the reactor).
bool prepare_drained_reads(tcp::socket& socket);

// The socket's reactor state when prepare_drained_reads() succeeded on it, else null.
const void* drained_reads_state(tcp::socket& socket);

// Whether the last readiness report of that state carried no end of stream, hangup or error: then a short
// read emptied the socket and any later byte or FIN raises a new event. Called inside the reactor.
bool short_read_empties(const void* reactor_state);

// Whether the socket's next read will wait for readiness without trying recv() first (for tests).
bool next_read_waits(tcp::socket& socket);

// Starts `op` as a read on the socket's reactor, trying it at once unless the socket is known empty.
void start_drained_read(tcp::socket& socket, boost::asio::detail::reactor_op* op, bool is_continuation);

}  // namespace sluice::proxy
