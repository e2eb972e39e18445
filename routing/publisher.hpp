// Publisher: builds a snapshot from the newest model submitted and publishes it.
//
// submit() stores a model (any thread); the newest replaces one not yet flushed. flush() builds one
// snapshot from the newest model and publishes it. A proxy's routing inputs (embed/inputs.cpp) submit and
// flush at once: discovery has already coalesced its bursts (kubernetes.coalesce, 50 ms).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>

#include "routing/model.hpp"
#include "routing/registry.hpp"
#include "routing/table.hpp"

namespace sluice::routing {

class Publisher {
 public:
  // `table` and `registry` must outlive the publisher.
  Publisher(Table& table, EndpointRegistry& registry) : table_(table), registry_(registry) {}

  // Stores `model` as the next one to publish, replacing one not flushed yet. Any thread.
  void submit(Model model);

  // Builds and publishes the pending model, if any. Returns whether it published. Control thread.
  bool flush(Clock::time_point now = Clock::now());

  std::uint64_t submitted() const;  // models submitted so far
  std::uint64_t published() const;  // snapshots published so far

 private:
  Table& table_;
  EndpointRegistry& registry_;
  mutable std::mutex mutex_;  // control side only: workers never touch the publisher
  std::optional<Model> pending_;
  std::uint64_t submitted_ = 0;
  std::uint64_t published_ = 0;
  std::mutex build_mutex_;  // one build at a time
};

}  // namespace sluice::routing
