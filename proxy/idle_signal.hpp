// Wakes a thread that waits for the workers' requests in flight to reach zero (Proxy::wait_drained),
// instead of it polling their counts. A worker calls notify() each time its own count falls to zero (see
// RequestGauge in stats.hpp); the waiter then re-reads the sum over all workers.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace sluice::proxy {

class IdleSignal {
 public:
  // A worker's count has just been stored as zero (by the calling thread). Cheap while nobody waits: a
  // fence and a load. Any thread.
  void notify() {
    // Pairs with the fence in wait_until: either this load sees the waiter, or the waiter's predicate sees
    // the zero stored before this fence (the two threads' store-then-load cannot both miss).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_relaxed) == 0) return;
    // A waiter that saw a count above zero holds the mutex until it blocks: taking it here means the
    // notification cannot fall between its check and its wait.
    { std::lock_guard lock(mutex_); }
    cv_.notify_all();
  }

  // Waits until `idle()` is true or `deadline` has passed; returns idle(). `idle` reads the workers'
  // counts (relaxed loads are enough: see notify()). Any thread that is not one whose count it waits for.
  template <class Pred>
  bool wait_until(std::chrono::steady_clock::time_point deadline, Pred idle) {
    std::unique_lock lock(mutex_);
    waiters_.fetch_add(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const bool ok = cv_.wait_until(lock, deadline, idle);
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return ok;
  }

 private:
  std::atomic<int> waiters_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
};

}  // namespace sluice::proxy
