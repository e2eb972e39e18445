#include "routing/table.hpp"

#include <utility>

#include "routing/snapshot.hpp"

namespace sluice::routing {

Table::Table() : current_(std::make_shared<const Snapshot>()) {}

Table::~Table() = default;

void Table::publish(std::shared_ptr<Snapshot> next) {
  // Generation first into the snapshot, then the pointer, then the counter: a reader that sees the new
  // generation always loads a snapshot at least that new.
  std::shared_ptr<const Snapshot> previous;
  {
    std::lock_guard lock(mutex_);
    next->generation = generation_.load(std::memory_order_relaxed) + 1;
    const auto gen = next->generation;
    previous = std::exchange(current_, std::move(next));
    generation_.store(gen, std::memory_order_release);
  }
  // `previous` is released here, outside the lock: freeing a large snapshot never delays a reader.
}

std::uint64_t Reader::generation_of(const Snapshot& s) { return s.generation; }

std::shared_ptr<const Snapshot> Table::load() const {
  std::lock_guard lock(mutex_);
  return current_;
}

}  // namespace sluice::routing
