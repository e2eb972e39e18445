// Leader election over a coordination.k8s.io/v1 Lease in a home cluster, as client-go's
// leaderelection with a LeaseLock: several `sluice sync` replicas run, one writes.
//   - Every retry_period: read the Lease. Absent: create it holding it. Held by us: renew
//     (renewTime). Held by another: take it over only when its record has not changed for
//     lease_duration by our own clock (client-go's rule: no trust in the other's clock).
//   - A leader that has not renewed for renew_deadline (< lease_duration) stops leading at once, so
//     it stops writing before another replica may take over.
// Control thread only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "discovery/api_client.hpp"
#include "sync/config.hpp"

namespace sluice::sync {

class LeaderElector : public std::enable_shared_from_this<LeaderElector> {
 public:
  // `on_change(leading)` is called when leadership is gained or lost.
  LeaderElector(boost::asio::io_context& ioc, LeaderElection config, std::function<void(bool)> on_change);

  // Loads the home cluster's credentials and starts the loop; "" or an error.
  std::string start();
  // Stops the loop and leading. A leader then releases the Lease (holderIdentity emptied, as
  // client-go's ReleaseOnCancel), so that another replica takes over at its next retry instead of
  // after lease_duration; `done` runs when that is over (at once when not leading).
  void stop(std::function<void()> done = {});

  bool leading() const { return leading_; }
  const std::string& identity() const { return config_.identity; }
  std::uint64_t transitions() const { return transitions_; }

 private:
  net::awaitable<void> run();
  net::awaitable<bool> try_acquire_or_renew();
  net::awaitable<void> release(std::function<void()> done);
  void set_leading(bool leading);

  boost::asio::io_context& ioc_;
  LeaderElection config_;
  std::function<void(bool)> on_change_;
  std::unique_ptr<discovery::ApiConnection> conn_;
  std::unique_ptr<discovery::ApiConnection> release_conn_;  // the loop's may be busy when stopping
  boost::asio::steady_timer timer_;
  bool leading_ = false;
  bool stopped_ = false;
  std::chrono::steady_clock::time_point last_renew_{};
  // The other holder's record as last seen, and when (our clock) it last changed.
  std::string observed_record_;
  std::chrono::steady_clock::time_point observed_at_{};
  std::uint64_t transitions_ = 0;
};

}  // namespace sluice::sync
