#include "sync/leader.hpp"

#include <unistd.h>

#include <ctime>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "discovery/credentials.hpp"
#include "log/logger.hpp"

namespace sluice::sync {
namespace {

using nlohmann::json;
using boost::system::error_code;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t max_body = 1024 * 1024;

// A Lease's MicroTime: RFC 3339 with microseconds.
std::string micro_time_now() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(us));
  return buf;
}

std::string default_identity() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  return std::string(host[0] ? host : "sluice-sync") + "_" + std::to_string(getpid());
}

}  // namespace

LeaderElector::LeaderElector(boost::asio::io_context& ioc, LeaderElection config, std::function<void(bool)> on_change)
    : ioc_(ioc), config_(std::move(config)), on_change_(std::move(on_change)), timer_(ioc) {
  if (config_.identity.empty()) config_.identity = default_identity();
}

std::string LeaderElector::start() {
  discovery::KubeOptions options;
  options.kubeconfig = config_.kubeconfig;
  options.context = config_.context;
  auto creds = discovery::load_credentials(options);
  if (!creds.credentials) return "leader_election: " + creds.error;
  std::string error;
  auto tls = discovery::make_tls_context(*creds.credentials, error);
  if (!tls) return "leader_election: " + creds.credentials->origin + ": " + error;
  // Requests end well within the renew deadline, so that a hung API server cannot keep us leading.
  const auto timeout = std::chrono::seconds(
      std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(config_.retry_period).count()));
  auto credentials = std::make_shared<const discovery::Credentials>(*creds.credentials);
  conn_ = std::make_unique<discovery::ApiConnection>(ioc_.get_executor(), tls, credentials,
                                                     discovery::ApiConnection::Timeouts{timeout, timeout});
  release_conn_ = std::make_unique<discovery::ApiConnection>(ioc_.get_executor(), tls, credentials,
                                                             discovery::ApiConnection::Timeouts{timeout, timeout});
  log::info("sync: leader election on Lease " + config_.name_space + "/" + config_.name + " as " + config_.identity);
  net::co_spawn(ioc_, [self = shared_from_this()]() { return self->run(); }, net::detached);
  return {};
}

void LeaderElector::stop(std::function<void()> done) {
  if (stopped_) {
    if (done) done();
    return;
  }
  stopped_ = true;
  timer_.cancel();
  if (conn_) conn_->close();
  const bool was_leading = leading_;
  set_leading(false);
  if (!was_leading || !release_conn_) {
    if (done) done();
    return;
  }
  net::co_spawn(ioc_, release(std::move(done)), net::detached);
}

net::awaitable<void> LeaderElector::release(std::function<void()> done) {
  auto self = shared_from_this();
  const std::string path = "/apis/coordination.k8s.io/v1/namespaces/" + config_.name_space + "/leases/" + config_.name;
  error_code ec;
  auto got = co_await release_conn_->get(path, max_body, ec);
  json lease = json::parse(got.body, nullptr, false);
  if (!ec && got.status == 200 && lease.is_object() && lease["spec"].is_object() &&
      lease["spec"].value("holderIdentity", "") == config_.identity) {
    // client-go's release: no holder, a one-second lease, so the next reader may take it at once.
    lease["spec"]["holderIdentity"] = "";
    lease["spec"]["leaseDurationSeconds"] = 1;
    lease["spec"]["renewTime"] = micro_time_now();
    auto resp = co_await release_conn_->request(http::verb::put, path, lease.dump(), max_body, ec);
    if (!ec && resp.status == 200) log::info("sync: released Lease " + config_.name_space + "/" + config_.name);
  }
  release_conn_->close();
  if (done) done();
}

void LeaderElector::set_leading(bool leading) {
  if (leading == leading_) return;
  leading_ = leading;
  if (leading) ++transitions_;
  log::info(std::string("sync: ") + (leading ? "leading (Lease " : "not leading any more (Lease ") +
            config_.name_space + "/" + config_.name + ")");
  if (on_change_) on_change_(leading);
}

net::awaitable<void> LeaderElector::run() {
  auto self = shared_from_this();
  while (!stopped_) {
    const bool renewed = co_await try_acquire_or_renew();
    if (stopped_) break;
    if (renewed) {
      last_renew_ = SteadyClock::now();
      set_leading(true);
    } else if (leading_ && SteadyClock::now() - last_renew_ >= config_.renew_deadline) {
      // Not renewed within the deadline: stop writing now, before the lease can pass to another.
      log::warn("sync: could not renew the Lease within " + std::to_string(config_.renew_deadline.count()) + " ms");
      set_leading(false);
    }
    timer_.expires_after(config_.retry_period);
    error_code ec;
    co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

net::awaitable<bool> LeaderElector::try_acquire_or_renew() {
  const std::string path = "/apis/coordination.k8s.io/v1/namespaces/" + config_.name_space + "/leases";
  const auto seconds = std::max<long long>(
      1, std::chrono::duration_cast<std::chrono::seconds>(config_.lease_duration).count());
  error_code ec;
  auto got = co_await conn_->get(path + "/" + config_.name, max_body, ec);
  if (ec || stopped_) co_return false;
  const std::string now = micro_time_now();
  if (got.status == 404) {
    json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                  {"kind", "Lease"},
                  {"metadata", {{"name", config_.name}, {"namespace", config_.name_space}}},
                  {"spec", {{"holderIdentity", config_.identity}, {"leaseDurationSeconds", seconds},
                            {"acquireTime", now}, {"renewTime", now}, {"leaseTransitions", 0}}}};
    auto resp = co_await conn_->request(http::verb::post, path, lease.dump(), max_body, ec);
    co_return !ec && resp.status == 201;
  }
  if (got.status != 200) co_return false;
  json lease = json::parse(got.body, nullptr, false);
  if (!lease.is_object()) co_return false;
  json& spec = lease["spec"];
  if (!spec.is_object()) spec = json::object();
  const std::string holder = spec.value("holderIdentity", "");
  // The record as a whole: any change of holder or renewTime restarts the other's lease by our clock.
  const std::string record = holder + "|" + spec.value("renewTime", "") + "|" +
                             std::to_string(spec.value("leaseDurationSeconds", 0));
  if (record != observed_record_) {
    observed_record_ = record;
    observed_at_ = SteadyClock::now();
  }
  if (holder != config_.identity) {
    const auto duration = std::chrono::seconds(spec.value("leaseDurationSeconds", seconds));
    if (!holder.empty() && SteadyClock::now() - observed_at_ < duration) {
      if (leading_) set_leading(false);  // someone else holds it (we lost it)
      co_return false;
    }
    spec["holderIdentity"] = config_.identity;
    spec["acquireTime"] = now;
    spec["leaseTransitions"] = spec.value("leaseTransitions", 0) + 1;
  }
  spec["renewTime"] = now;
  spec["leaseDurationSeconds"] = seconds;
  // PUT with the resourceVersion read: if another replica wrote meanwhile, 409 and we are not leader.
  auto resp = co_await conn_->request(http::verb::put, path + "/" + config_.name, lease.dump(), max_body, ec);
  co_return !ec && resp.status == 200;
}

}  // namespace sluice::sync
