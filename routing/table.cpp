#include "routing/table.hpp"

#include "routing/snapshot.hpp"

namespace sluice::routing {

Table::Table() : current_(std::make_shared<const Snapshot>()) {}

Table::~Table() = default;

void Table::publish(std::shared_ptr<Snapshot> next) {
  // Generation first into the snapshot, then the pointer, then the counter: a reader that sees the new
  // generation always loads a snapshot at least that new.
  next->generation = generation_.load(std::memory_order_relaxed) + 1;
  const auto gen = next->generation;
  current_.store(std::move(next), std::memory_order_release);
  generation_.store(gen, std::memory_order_release);
}

std::shared_ptr<const Snapshot> Table::load() const {
  return current_.load(std::memory_order_acquire);
}

}  // namespace sluice::routing
