// The endpoint an attempt uses, held until the attempt's outcome is reported to routing.
//
// Routing must hear exactly once how each pick went (active requests, outlier detection, the retry
// budget). Holding the pick in this object makes that structural: report() tells routing once, and a pick
// dropped without a report (the coroutine destroyed on shutdown, an early return) is reported as a local
// abort, which blames no endpoint.
//
// The pick lives in the caller's storage (`slot`): the HTTP/1.1 session keeps one per connection and fills
// it with Picker::pick_into, so its strings' capacity is reused from request to request.
#pragma once

#include <utility>

#include "routing/picker.hpp"

namespace sluice::proxy {

class ReportedPick {
 public:
  // `slot` holds an ok pick and must outlive this object.
  ReportedPick(routing::Picker& picker, routing::PickResult& slot) : picker_(picker), pick_(slot) {}
  ~ReportedPick() { report(routing::Outcome::local_abort); }
  ReportedPick(const ReportedPick&) = delete;
  ReportedPick& operator=(const ReportedPick&) = delete;

  const routing::PickResult& operator*() const { return pick_; }
  const routing::PickResult* operator->() const { return &pick_; }

  // Tells routing how the attempt went; later calls do nothing.
  void report(routing::Outcome outcome) {
    if (reported_) return;
    reported_ = true;
    picker_.finish(pick_, outcome);
  }

  // The next attempt's pick (the previous one must have been reported).
  void replace(routing::PickResult next) {
    report(routing::Outcome::local_abort);
    pick_ = std::move(next);
    reported_ = false;
  }

 private:
  routing::Picker& picker_;
  routing::PickResult& pick_;
  bool reported_ = false;
};

}  // namespace sluice::proxy
