// Publisher: coalesces bursts of model updates into one rebuild and publication.
//
// Discovery calls submit() for every change (any thread); the newest model replaces any pending one.
// The control thread calls flush() once the burst has settled (after the coalesce delay, e.g. the
// config's kubernetes.coalesce, 50 ms), which builds one snapshot from the newest model and publishes it.
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

  // Stores `model` as the next one to publish. Returns true when nothing was pending before (the caller
  // should arrange a flush after its coalesce delay); false when it merely replaced a pending model.
  // Any thread.
  bool submit(Model model, Clock::time_point now = Clock::now());

  // Builds and publishes the pending model, if any. Returns whether it published. Control thread.
  bool flush(Clock::time_point now = Clock::now());

  // Whether a model is pending, and since when (the first submit of the burst).
  bool pending() const;
  std::optional<Clock::time_point> pending_since() const;

  std::uint64_t submitted() const;  // models submitted so far
  std::uint64_t published() const;  // snapshots published so far

 private:
  Table& table_;
  EndpointRegistry& registry_;
  mutable std::mutex mutex_;  // control side only: workers never touch the publisher
  std::optional<Model> pending_;
  Clock::time_point pending_since_{};
  std::uint64_t submitted_ = 0;
  std::uint64_t published_ = 0;
  std::mutex build_mutex_;  // one build at a time
};

}  // namespace sluice::routing
