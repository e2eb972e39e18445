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
  // Outside the reader lock: freeing a large snapshot never delays a reader. Readers only ever copy
  // current_, so a retired snapshot whose count is 1 (ours) cannot gain a reader again; releasing it is
  // an acq_rel decrement that orders after the readers' own releases.
  std::lock_guard lock(retire_mutex_);
  std::erase_if(retired_, [](const std::shared_ptr<const Snapshot>& s) { return s.use_count() == 1; });
  if (previous.use_count() > 1) retired_.push_back(std::move(previous));
}

std::uint64_t Reader::generation_of(const Snapshot& s) { return s.generation; }

std::shared_ptr<const Snapshot> Table::load() const {
  std::lock_guard lock(mutex_);
  return current_;
}

}  // namespace sluice::routing
