#include "proxy/deadline.hpp"

#include <boost/asio/bind_allocator.hpp>

#include "proxy/recycler.hpp"

namespace sluice::proxy {

Deadline::~Deadline() {
  if (!state_) return;
  state_->stream = nullptr;
  state_->deadline = clock::time_point::max();
  if (state_->waiting) state_->timer.cancel();  // its handler, run or destroyed, frees the state
}

void Deadline::set(beast::tcp_stream& stream, clock::time_point at) {
  stream.expires_never();  // cheap when no Beast timer wait is pending, which is the case between operations
  if (!state_) state_ = std::make_shared<State>(stream);
  auto& s = *state_;
  s.deadline = at;
  s.passed = false;
  // A wait for this deadline or an earlier one is pending: when it fires it waits again for the rest.
  if (s.waiting && s.armed <= at) return;
  arm(state_, at);
}

void Deadline::arm(const std::shared_ptr<State>& s, clock::time_point at) {
  // expires_at cancels a pending wait: its handler sees an old generation and does nothing.
  s->timer.expires_at(at);
  s->armed = at;
  s->waiting = true;
  const unsigned generation = ++s->generation;
  s->timer.async_wait(net::bind_allocator(RecyclingAllocator<void>(),
                                          [s, generation](boost::system::error_code ec) { fired(s, generation, ec); }));
}

void Deadline::fired(const std::shared_ptr<State>& s, unsigned generation, boost::system::error_code ec) {
  if (generation != s->generation) return;  // superseded by a re-arm
  s->waiting = false;
  if (ec || !s->stream || s->deadline == clock::time_point::max()) return;
  if (s->deadline > clock::now()) {
    arm(s, s->deadline);  // moved later since this wait began
    return;
  }
  s->deadline = clock::time_point::max();
  s->passed = true;
  s->stream->close();  // as Beast's timeout does: the pending operation completes with an error
}

}  // namespace sluice::proxy
