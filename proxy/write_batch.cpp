#include "proxy/write_batch.hpp"

#include <cassert>

#include <boost/asio/post.hpp>

namespace sluice::proxy {

void WriteBatch::add(Entry entry) {
  assert(entry.socket->non_blocking() || !entry.socket->is_open());
  pending_.push_back(std::move(entry));
  if (flush_posted_) return;
  // Relies on Asio's queueing order (write_batch.hpp; tested): a handler posted from a handler runs after
  // those already queued, and those include the rest of this batch of ready connections (Asio queues a
  // whole epoll_wait's worth before running any), whose requests join this flush.
  flush_posted_ = true;
  net::post(ioc_, [this] { flush(); });
}

void WriteBatch::flush() {
  flush_posted_ = false;
  flushing_.swap(pending_);
  // Every write first, then every completion: a resumed session may queue a new write (it goes to the next
  // flush) or end, but no peer waits on the resumption of another.
  // The raw pointers are still good: each entry's handler, not yet called, keeps its coroutine (and the
  // socket and buffers in it) alive (write_batch.hpp).
  for (auto& e : flushing_) e.written = e.socket->write_some(*e.buffers, e.ec);
  // Called directly: this runs as a handler on the worker's thread, the one that runs every session.
  for (auto& e : flushing_) std::move(e.handler)(e.ec, e.written);
  flushing_.clear();
}

}  // namespace sluice::proxy
