// The routing table: an immutable Snapshot published by one atomic swap.
//
// Writers (the control thread: discovery, health checks, admin) build a new
// Snapshot off the hot path and publish() it. Readers (workers) hold a
// Reader that caches the current snapshot and revalidates it with one atomic
// load of the generation counter per request; only when the generation moved
// does the reader take the new shared_ptr. Old snapshots are freed when their
// last reader lets go (shared_ptr ownership).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace sluice::routing {

struct Snapshot;

class Table {
 public:
  Table();
  ~Table();
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  // Publishes `next` (its generation is set here). Any thread; writers serialise among themselves.
  void publish(std::shared_ptr<Snapshot> next);

  // The current snapshot; never null (an empty snapshot before the first publish). Any thread.
  std::shared_ptr<const Snapshot> load() const;

  // Generation of the current snapshot; increases by one per publish. Any thread, lock-free.
  std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  std::atomic<std::shared_ptr<const Snapshot>> current_;
  std::atomic<std::uint64_t> generation_{0};
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
    auto gen = table_->generation();
    if (gen != cached_generation_ || !cached_) {
      cached_ = table_->load();
      cached_generation_ = gen;
    }
  }

  const Table* table_;
  std::shared_ptr<const Snapshot> cached_;
  std::uint64_t cached_generation_ = ~std::uint64_t{0};
};

}  // namespace sluice::routing
