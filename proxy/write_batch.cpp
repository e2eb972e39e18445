#include "proxy/write_batch.hpp"

#include <boost/asio/post.hpp>

namespace sluice::proxy {

void WriteBatch::add(Entry entry) {
  pending_.push_back(std::move(entry));
  if (flush_posted_) return;
  // A posted handler runs after those already queued: the rest of this batch of ready connections (Asio
  // queues a whole epoll_wait's worth before running any), whose requests join this flush.
  flush_posted_ = true;
  net::post(ioc_, [this] { flush(); });
}

void WriteBatch::flush() {
  flush_posted_ = false;
  flushing_.swap(pending_);
  // Every write first, then every completion: a resumed session may queue a new write (it goes to the next
  // flush) or end, but no peer waits on the resumption of another.
  for (auto& e : flushing_) e.written = e.socket->write_some(*e.buffers, e.ec);
  // Called directly: this runs as a handler on the worker's thread, the one that runs every session.
  for (auto& e : flushing_) std::move(e.handler)(e.ec, e.written);
  flushing_.clear();
}

}  // namespace sluice::proxy
