#include "sync/controller.hpp"

#include <ctime>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "log/logger.hpp"

namespace sluice::sync {
namespace {

using nlohmann::json;
using boost::system::error_code;

constexpr auto tick_interval = std::chrono::seconds(1);

}  // namespace

Controller::Controller(boost::asio::io_context& ioc, Config config)
    : ioc_(ioc), config_(std::move(config)), pass_timer_(ioc), tick_timer_(ioc) {}

std::string Controller::start() {
  started_at_ = Clock::now();
  next_resync_ = started_at_ + config_.resync_interval;
  std::weak_ptr<Controller> weak = shared_from_this();
  for (const auto& mc : config_.members) {
    auto m = std::make_shared<Member>(
        ioc_.get_executor(), mc, config_.mcs,
        [weak](const std::string& key) {
          if (auto self = weak.lock()) self->enqueue(key);
        },
        [weak] {
          if (auto self = weak.lock()) self->on_member_state();
        });
    members_.push_back(m);
  }
  for (auto& m : members_)
    if (std::string error = m->start(); !error.empty()) return error;
  if (config_.leader_election) {
    elector_ = std::make_shared<LeaderElector>(ioc_, *config_.leader_election, [weak](bool leading) {
      auto self = weak.lock();
      if (!self || !leading) return;
      // Taking over: what the previous leader left may be anything; recompute every key.
      if (self->initial_resync_done_) self->enqueue_all();
      else self->schedule_pass(std::chrono::milliseconds(0));
    });
    if (std::string error = elector_->start(); !error.empty()) return error;
  }
  tick();
  return {};
}

void Controller::stop(std::function<void()> done) {
  stopped_ = true;
  pass_timer_.cancel();
  tick_timer_.cancel();
  for (auto& m : members_) m->stop();
  if (elector_) elector_->stop(std::move(done));
  else if (done) done();
}

bool Controller::all_synced() const {
  for (const auto& m : members_)
    if (!m->synced()) return false;
  return true;
}

bool Controller::counts(const Member& m) const {
  if (!m.synced()) return false;
  if (m.reachable()) return true;
  return Clock::now() - m.unreachable_since() < config_.member_ttl;
}

std::map<std::string, std::string> Controller::unknown_members() const {
  std::map<std::string, std::string> out;
  if (Clock::now() - started_at_ >= config_.member_ttl) return out;
  for (const auto& m : members_)
    if (!m->synced()) out.emplace(m->key(), m->config().name);
  return out;
}

bool Controller::start_gate_open() const {
  return all_synced() || Clock::now() - started_at_ >= std::min(config_.initial_sync_timeout, config_.member_ttl);
}

void Controller::enqueue(const std::string& key) {
  if (key.empty()) return;
  pending_.insert(key);
  schedule_pass(config_.coalesce);
}

void Controller::enqueue_all() {
  for (const auto& m : members_) {
    for (const auto& [key, _] : m->exports()) pending_.insert(key);
    for (const auto& [key, object] : m->imports())
      if (is_managed(object)) pending_.insert(key);
    for (const auto kind : {discovery::Kind::mcs_service_import, discovery::Kind::endpoint_slice})
      for (const auto& [key, object] : m->objects(kind))
        if (is_managed(object)) pending_.insert(service_key(kind, object));
  }
  ++stats_.resyncs;
  schedule_pass(std::chrono::milliseconds(0));
}

void Controller::schedule_pass(std::chrono::milliseconds delay) {
  if (pass_scheduled_ || pass_running_ || stopped_) return;
  pass_scheduled_ = true;
  pass_timer_.expires_after(delay);
  pass_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    auto self = weak.lock();
    if (!self || ec || self->stopped_) return;
    self->pass_scheduled_ = false;
    net::co_spawn(self->ioc_, [self]() { return self->run_pass(); }, net::detached);
  });
}

void Controller::on_member_state() {
  // A member (re)synced or became unreachable: the start gate or the GC gate may have opened.
  if (!initial_resync_done_ && all_synced()) schedule_pass(std::chrono::milliseconds(0));
  else if (initial_resync_done_) enqueue_all();
}

void Controller::tick() {
  if (stopped_) return;
  // TTL expiries: a member whose last-known exports stop counting (or count again) changes every key.
  bool changed = false;
  for (const auto& m : members_) {
    const bool expired = m->synced() && !counts(*m);
    bool& was = expired_[m->config().name];
    if (expired != was) {
      if (expired) log::warn("sync: member " + m->config().name + " unreachable beyond the TTL: its exports are dropped");
      was = expired;
      changed = true;
    }
  }
  // An unknown member that lists, or whose TTL since start runs out, changes what is carried over.
  if (const std::size_t unknown = unknown_members().size(); unknown != unknown_count_) {
    unknown_count_ = unknown;
    changed = true;
  }
  if (changed && initial_resync_done_) enqueue_all();
  bool due = false;
  for (const auto& [key, r] : retry_)
    if (r.at <= Clock::now()) {
      pending_.insert(key);
      due = true;
    }
  if (due) schedule_pass(std::chrono::milliseconds(0));
  if (!initial_resync_done_ && start_gate_open()) schedule_pass(std::chrono::milliseconds(0));
  if (initial_resync_done_ && Clock::now() >= next_resync_) {
    next_resync_ = Clock::now() + config_.resync_interval;
    net::co_spawn(ioc_, [self = shared_from_this()]() -> net::awaitable<void> {
      co_await self->resolve_gateways();
      self->enqueue_all();
    }, net::detached);
  }
  tick_timer_.expires_after(tick_interval);
  tick_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    if (auto self = weak.lock(); self && !ec) self->tick();
  });
}

net::awaitable<void> Controller::resolve_gateways() {
  for (auto& m : members_) {
    const std::string host = m->config().gateway_host;
    error_code ec;
    net::ip::make_address(host, ec);
    if (!ec) continue;  // an IP literal
    tcp::resolver resolver(ioc_);
    auto results = co_await resolver.async_resolve(host, "", net::redirect_error(net::use_awaitable, ec));
    if (ec || results.empty()) {
      log::warn("sync: gateway " + host + " of member " + m->config().name + " does not resolve (" + ec.message() +
                "); keeping " + (m->gateway().ip.empty() ? "no address" : m->gateway().ip));
      continue;
    }
    // IPv4 first when the name has both (what a gateway's LoadBalancer address usually is, and
    // deterministic where getaddrinfo's order is not).
    std::string ip = results.begin()->endpoint().address().to_string();
    for (const auto& entry : results)
      if (entry.endpoint().address().is_v4()) {
        ip = entry.endpoint().address().to_string();
        break;
      }
    if (ip != m->gateway().ip) {
      log::info("sync: gateway " + host + " of member " + m->config().name + " is " + ip);
      m->set_gateway_ip(ip);
    }
  }
}

net::awaitable<void> Controller::run_pass() {
  auto self = shared_from_this();
  if (pass_running_ || stopped_) co_return;
  // A replica that does not hold the Lease keeps its caches and writes nothing; keys wait.
  if (!leading()) co_return;
  // Never act on partial lists: no pass until every member has listed once, or initial_sync_timeout
  // passed; members still unlisted are then unknown, their endpoints carried over (reconcile).
  if (!initial_resync_done_) {
    if (!start_gate_open()) co_return;
    co_await resolve_gateways();
    initial_resync_done_ = true;
    log::info("sync: every member listed; full resync");
    enqueue_all();
    pass_scheduled_ = false;
    pass_timer_.cancel();
  }
  pass_running_ = true;
  ++stats_.passes;
  while (!pending_.empty() && !stopped_) {
    std::string key = *pending_.begin();
    pending_.erase(pending_.begin());
    co_await reconcile(key);
  }
  if (pending_.empty() && !stopped_) first_pass_done_ = true;
  pass_running_ = false;
}

void Controller::schedule_retry(const std::string& key) {
  auto [it, _] = retry_.try_emplace(key, Retry{Clock::now(), discovery::Backoff()});
  it->second.at = Clock::now() + it->second.backoff.next();
}

net::awaitable<void> Controller::reconcile(const std::string& key) {
  ++stats_.reconciles;
  // A pass over the key clears its backoff unless a write fails again (schedule_retry).
  const bool retrying = retry_.count(key) > 0;
  const std::uint64_t failures_before = stats_.write_failures;
  const auto [ns, name] = split_key(key);
  std::vector<ExportInput> inputs;
  std::vector<Member*> exporters;
  for (auto& m : members_) {
    if (!counts(*m)) continue;
    auto e = m->exports().find(key);
    if (e == m->exports().end()) continue;
    auto s = m->services().find(key);
    inputs.push_back(export_input(m->key(), m->config().name, m->gateway(), e->second,
                                  s == m->services().end() ? nullptr : &s->second));
    exporters.push_back(m.get());
  }
  Resolution r = resolve(inputs);
  const auto unknown = unknown_members();
  std::map<std::string, std::string> names_to_keys;
  for (const auto& m : members_) names_to_keys.emplace(m->config().name, m->key());
  // Deletes need the whole picture: every member listed and reachable now.
  bool gc_allowed = true;
  for (const auto& m : members_)
    if (!m->reachable()) gc_allowed = false;
  for (auto& m : members_) {
    if (stopped_) co_return;
    if (!m->reachable()) continue;  // its import is written when it is back (a full resync follows)
    json desired = r.merged ? import_object(*r.merged, ns, name, m->key()) : json();
    auto existing = m->imports().find(key);
    const bool managed = existing != m->imports().end() && is_managed(existing->second);
    if (managed && !unknown.empty())
      desired = carry_over(existing->second, r.merged ? &desired : nullptr, unknown, names_to_keys);
    if (!desired.is_null()) {
      co_await write_managed(*m, flomesh_imports(), key, desired);
    } else if (managed) {
      if (gc_allowed) co_await delete_managed(*m, flomesh_imports(), key);
      else ++stats_.gc_deferred;
    }
    if (config_.mcs) co_await reconcile_mcs(*m, key, r, exporters, gc_allowed);
  }
  for (std::size_t i = 0; i < exporters.size(); ++i) {
    if (stopped_) co_return;
    if (exporters[i]->reachable()) co_await write_export_status(*exporters[i], key, r.verdicts[i]);
  }
  if (retrying && stats_.write_failures == failures_before) retry_.erase(key);
}

std::vector<std::string> Controller::reload(const Config& config) {
  std::vector<std::string> warnings;
  bool same_members = config.members.size() == members_.size();
  for (std::size_t i = 0; same_members && i < members_.size(); ++i) {
    const MemberConfig& now = members_[i]->config();
    const MemberConfig& next = config.members[i];
    same_members = now.name == next.name && now.key() == next.key() && now.kubeconfig == next.kubeconfig &&
                   now.context == next.context;
  }
  if (!same_members) warnings.push_back("member names, keys or credentials changed: they take effect on restart");
  bool changed = false;
  for (const auto& next : config.members)
    for (auto& m : members_)
      if (m->config().name == next.name && m->set_gateway(next.gateway_host, next.gateway_port)) {
        log::info("sync: member " + next.name + "'s gateway is now " + next.gateway_host + ":" +
                  std::to_string(next.gateway_port));
        changed = true;
      }
  if (config.leader_election.has_value() != config_.leader_election.has_value())
    warnings.push_back("leader_election changes take effect on restart");
  config_.resync_interval = config.resync_interval;
  config_.member_ttl = config.member_ttl;
  config_.coalesce = config.coalesce;
  if (changed && initial_resync_done_) {
    net::co_spawn(ioc_, [self = shared_from_this()]() -> net::awaitable<void> {
      co_await self->resolve_gateways();
      self->enqueue_all();
    }, net::detached);
  }
  return warnings;
}

std::string Controller::explain(const std::string& key) const {
  const auto slash = key.find('/');
  if (slash == std::string::npos) return json{{"error", "expected service=namespace/name"}}.dump(2);
  const std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
  std::vector<ExportInput> inputs;
  json members = json::array();
  for (const auto& m : members_) {
    json entry = {{"member", m->config().name}, {"cluster_key", m->key()}, {"synced", m->synced()},
                  {"reachable", m->reachable()}, {"exports_count", counts(*m)}};
    auto e = m->exports().find(key);
    entry["has_export"] = e != m->exports().end();
    if (counts(*m) && e != m->exports().end()) {
      auto s = m->services().find(key);
      inputs.push_back(export_input(m->key(), m->config().name, m->gateway(), e->second,
                                    s == m->services().end() ? nullptr : &s->second));
    }
    members.push_back(std::move(entry));
  }
  Resolution r = resolve(inputs);
  json verdicts = json::array();
  for (const auto& v : r.verdicts)
    verdicts.push_back({{"cluster_key", v.cluster_key}, {"valid", v.valid}, {"valid_reason", v.valid_reason},
                        {"valid_message", v.valid_message}, {"conflict", v.conflict},
                        {"conflict_reason", v.conflict_reason}, {"conflict_message", v.conflict_message}});
  json desired = json::object();
  for (const auto& m : members_)
    desired[m->config().name] = r.merged ? import_object(*r.merged, ns, name, m->key()) : json(nullptr);
  return json{{"service", key}, {"members", members}, {"exports", verdicts}, {"desired", desired}}.dump(2);
}

}  // namespace sluice::sync
