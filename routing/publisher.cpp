#include "routing/publisher.hpp"

#include "routing/builder.hpp"
#include "routing/snapshot.hpp"

namespace sluice::routing {

void Publisher::submit(Model model) {
  std::lock_guard lock(mutex_);
  ++submitted_;
  pending_ = std::move(model);
}

bool Publisher::flush(Clock::time_point now) {
  std::lock_guard build(build_mutex_);
  std::optional<Model> model;
  {
    std::lock_guard lock(mutex_);
    if (!pending_) return false;
    model.swap(pending_);
  }
  table_.publish(build_snapshot(*model, registry_, now));
  std::lock_guard lock(mutex_);
  ++published_;
  return true;
}

std::uint64_t Publisher::submitted() const {
  std::lock_guard lock(mutex_);
  return submitted_;
}

std::uint64_t Publisher::published() const {
  std::lock_guard lock(mutex_);
  return published_;
}

}  // namespace sluice::routing
