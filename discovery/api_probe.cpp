#include "discovery/api_probe.hpp"

#include <algorithm>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log/logger.hpp"

namespace sluice::discovery {
namespace {

// /version is what kubectl and client-go's discovery ask first: tiny, and served to any authenticated
// client. Any answer but 429/5xx (even 401/403/404) shows the server is back.
constexpr const char* probe_path = "/version";
constexpr std::size_t probe_body_limit = 64 * 1024;
// A probe must not hang on a half-open server: a second to connect and to answer.
constexpr ApiConnection::Timeouts probe_timeouts{std::chrono::seconds(1), std::chrono::seconds(1)};

}  // namespace

ApiProbe::ApiProbe(net::any_io_executor executor, std::shared_ptr<ssl::context> tls,
                   std::shared_ptr<const Credentials> credentials, std::function<bool()> waiting,
                   std::function<void()> wake)
    : connection_(executor, std::move(tls), std::move(credentials), probe_timeouts),
      timer_(executor),
      waiting_(std::move(waiting)),
      wake_(std::move(wake)) {}

void ApiProbe::start() {
  if (running_ || stopped_) return;
  running_ = true;
  net::co_spawn(timer_.get_executor(), [self = shared_from_this()]() { return self->run(); }, net::detached);
}

void ApiProbe::stop() {
  stopped_ = true;
  timer_.cancel();
  connection_.close();
}

void ApiProbe::set_credentials(std::shared_ptr<const Credentials> credentials, std::shared_ptr<ssl::context> tls) {
  connection_.set_credentials(std::move(credentials), std::move(tls));
}

net::awaitable<void> ApiProbe::run() {
  auto self = shared_from_this();  // alive while probing
  auto delay = interval;
  // Not sooner than min_between_wakes after the last wake: the watches' own backoff covers that time.
  const auto since_wake = std::chrono::steady_clock::now() - last_wake_;
  if (last_wake_ != std::chrono::steady_clock::time_point{} && since_wake < min_between_wakes) {
    delay = std::max(delay, std::chrono::duration_cast<std::chrono::milliseconds>(min_between_wakes - since_wake));
  }
  for (;;) {
    boost::system::error_code ec;
    timer_.expires_after(delay);
    co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
    if (stopped_ || !waiting_()) break;
    ++probes_;
    ec = {};
    ApiResponse resp = co_await connection_.get(probe_path, probe_body_limit, ec);
    if (stopped_) break;
    if (ec) {
      delay = interval;  // still gone: keep the short fixed pace
      continue;
    }
    if (resp.status == 429 || resp.status >= 500) {
      delay = std::min(delay * 2, max_interval);  // back, but struggling: do not add to its load
      continue;
    }
    connection_.close();  // the watches have their own connections
    ++wakes_;
    last_wake_ = std::chrono::steady_clock::now();
    log::info("kubernetes: the API server answers again; resuming every watch");
    wake_();
    break;
  }
  running_ = false;
}

}  // namespace sluice::discovery
