#pragma once
// Work handed to a worker's thread from other threads (drain, stop), for an io_context created with
// BOOST_ASIO_CONCURRENCY_HINT_UNSAFE: such an io_context takes no lock at all, so net::post and stop()
// may only be called on its own thread. Other threads queue a function here under a mutex and wake the
// loop through an eventfd it reads; the loop runs the queue on its own thread. The loop's own hot path
// (every handler of every connection) then never locks: the scheduler's lock and unlock were 6-8 % of a
// relayed WebSocket message's instructions (tests/bench/README.md).
#include <functional>
#include <mutex>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

namespace sluice::proxy {

class Mailbox {
 public:
  // Starts reading the wake-up descriptor on `ioc`; call before the loop runs (or on its thread).
  explicit Mailbox(boost::asio::io_context& ioc);
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  // Any thread: `work` runs on the loop's thread, after the handlers already queued there. Work sent to a
  // loop that has stopped is never run.
  void send(std::function<void()> work);

 private:
  void read();
  void deliver();

  boost::asio::posix::stream_descriptor wake_;  // an eventfd: one 8-byte counter
  std::uint64_t wakes_ = 0;                     // what the read takes out of it
  std::mutex mutex_;
  std::vector<std::function<void()>> queued_;   // under mutex_
};

}  // namespace sluice::proxy
