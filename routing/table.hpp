// The routing table: an immutable Snapshot published by one atomic swap.
//
// Writers (the control thread: discovery, health checks, admin) build a new
// Snapshot off the hot path and publish() it. Readers (workers) hold a
// Reader that caches the current snapshot and revalidates it with one atomic
// load of the generation counter per request; only when the generation moved
// does the reader take the new shared_ptr. Old snapshots are freed when their
// last reader lets go (shared_ptr ownership).
//
// The shared_ptr itself is exchanged under a tiny mutex, taken by a worker
// once per publication (never per request) and held for one pointer copy.
// A replaced snapshot is retired, not dropped: the table keeps it until a later publish() finds no
// reader left on it, so the last reference is released on the publishing (control) thread and a worker
// never pays for freeing a 100k-endpoint snapshot on its request path.
// Why not std::atomic<std::shared_ptr>: libstdc++ 12 implements it with a
// lock bit too (is_lock_free() is false), and without ThreadSanitizer
// annotations, so the sanitizer build could not check it; a mutex it can.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace sluice::routing {

struct Snapshot;

class Table {
 public:
  Table();
  ~Table();
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  // Publishes `next` (its generation is set here) and frees retired snapshots that no reader holds any
  // more. Any thread; writers serialise among themselves.
  void publish(std::shared_ptr<Snapshot> next);

  // The current snapshot; never null (an empty snapshot before the first publish). Any thread.
  std::shared_ptr<const Snapshot> load() const;

  // Generation of the current snapshot; increases by one per publish. Any thread, lock-free.
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mutex_;                 // guards current_ only
  std::shared_ptr<const Snapshot> current_;  // never null
  std::atomic<std::uint64_t> generation_{0};
  std::mutex retire_mutex_;                                // guards retired_; publishers only
  std::vector<std::shared_ptr<const Snapshot>> retired_;  // replaced, possibly still read
};

// One per worker thread. Not thread-safe: one reader, one thread.
class Reader {
 public:
  explicit Reader(const Table& table) : table_(&table) {}

  // The current snapshot. The reference stays valid until the next call to current() on this reader;
  // copy the shared_ptr (current_ptr) to keep a snapshot across asynchronous steps.
  const Snapshot& current() { refresh(); return *cached_; }
  const std::shared_ptr<const Snapshot>& current_ptr() { refresh(); return cached_; }

 private:
  void refresh() {
    const auto gen = table_->generation();
    if (gen != cached_generation_ || !cached_) {
      cached_ = table_->load();
      // The loaded snapshot may already be newer than `gen`; its own generation is the exact one.
      cached_generation_ = generation_of(*cached_);
    }
  }
  static std::uint64_t generation_of(const Snapshot& s);

  const Table* table_;
  std::shared_ptr<const Snapshot> cached_;
  std::uint64_t cached_generation_ = ~std::uint64_t{0};
};

}  // namespace sluice::routing
