// Notices the API server's return after an outage, so that watches backing off toward their 30 s ceiling
// resume within about a second instead of at their next attempt.
//
// While any watch backs off after losing the server (connect refused, reset, timeout), one cheap request
// (GET /version) goes to the server every 500 ms: one per API server, never one per resource. When the server
// answers, every watch waiting for it is woken at once. A 429 or 5xx answer means the server is back but
// struggling: the probe backs off (doubling to 8 s) and leaves the watches to their own backoff. After a
// wake, probing starts again only when a watch loses the server again, and at most one wake per 5 s, so a
// server that answers probes but drops watches cannot turn the watches' backoff into a tight loop.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/steady_timer.hpp>

#include "discovery/api_client.hpp"

namespace sluice::discovery {

class ApiProbe : public std::enable_shared_from_this<ApiProbe> {
 public:
  static constexpr std::chrono::milliseconds interval{500};
  static constexpr std::chrono::milliseconds max_interval{8000};  // after 429/5xx answers
  static constexpr std::chrono::milliseconds min_between_wakes{5000};

  // `waiting`: whether any watch still waits for the server (the probe stops when none does).
  // `wake`: the server answered; wake the watches. Both are called on the control thread.
  ApiProbe(net::any_io_executor executor, std::shared_ptr<ssl::context> tls,
           std::shared_ptr<const Credentials> credentials, std::function<bool()> waiting,
           std::function<void()> wake);

  // A watch lost the server: probe until it answers (no-op while probing already, or within
  // min_between_wakes of the last wake). Control thread.
  void start();
  void stop();
  void set_credentials(std::shared_ptr<const Credentials> credentials, std::shared_ptr<ssl::context> tls);

  std::uint64_t probes() const { return probes_; }
  std::uint64_t wakes() const { return wakes_; }

 private:
  net::awaitable<void> run();

  ApiConnection connection_;
  net::steady_timer timer_;
  std::function<bool()> waiting_;
  std::function<void()> wake_;
  std::chrono::steady_clock::time_point last_wake_{};
  bool running_ = false;
  bool stopped_ = false;
  std::uint64_t probes_ = 0;
  std::uint64_t wakes_ = 0;
};

}  // namespace sluice::discovery
