// The reconciler of `sluice sync`: every change queues its "namespace/name"; a pass recomputes the
// desired ServiceImport of each queued key for every member from all members' caches (desired.hpp),
// compares it with what each member holds and writes the difference; ServiceExports get their Valid
// and Conflict conditions the same way. A full resync queues every key at start (once every member
// has listed) and every resync_interval. Control thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "discovery/backoff.hpp"
#include "sync/config.hpp"
#include "sync/leader.hpp"
#include "sync/member.hpp"

namespace sluice::sync {

struct Stats {
  std::uint64_t reconciles = 0;       // keys reconciled
  std::uint64_t passes = 0;           // reconcile passes (a burst of keys is one)
  std::uint64_t resyncs = 0;          // full resyncs
  std::map<std::string, std::uint64_t> writes;  // by verb: create, update, update_status, delete
  std::uint64_t write_conflicts = 0;  // 409 answers (then re-read and retried)
  std::uint64_t write_failures = 0;   // other failures (the key is retried later)
  std::uint64_t ownership_conflicts = 0;  // imports sync would change but does not own
  std::uint64_t gc_deferred = 0;      // deletes held back because a member was not synced/reachable
};

// "namespace/name" -> {namespace, name}.
std::pair<std::string, std::string> split_key(const std::string& key);

class Controller : public std::enable_shared_from_this<Controller> {
 public:
  Controller(boost::asio::io_context& ioc, Config config);

  // Starts every member's watches. "" or the first startup error (credentials). Control thread.
  std::string start();
  // Stops watches, passes and writes; `done` runs once the Lease is released (at once without one).
  void stop(std::function<void()> done = {});

  const Stats& stats() const { return stats_; }
  const std::vector<std::shared_ptr<Member>>& members() const { return members_; }
  // Every member has listed once since start.
  bool all_synced() const;
  // The first full resync has run (what sync writes reflects every member), or, for a replica that
  // is not leading, every member has listed (it is ready to take over).
  bool ready() const { return first_pass_done_ || (!leading() && all_synced()); }
  // Whether this replica writes: always without leader election, else while it holds the Lease.
  bool leading() const { return !elector_ || elector_->leading(); }
  bool has_election() const { return elector_ != nullptr; }
  // A reloaded config: gateway addresses and timings take effect (every key is recomputed; names
  // resolved first); member additions, removals and credential changes need a restart and are
  // reported as returned warnings.
  std::vector<std::string> reload(const Config& config);
  // The desired import per member for `key` ("namespace/name") and why, as JSON text.
  std::string explain(const std::string& key) const;

 private:
  // Whether a member's exports count now: synced, and reachable or unreachable for less than the TTL.
  bool counts(const Member& m) const;
  // Members not listed since start, within member_ttl of the start: cluster key -> name.
  std::map<std::string, std::string> unknown_members() const;
  // Whether the start gate is open: every member listed, or initial_sync_timeout passed.
  bool start_gate_open() const;
  void enqueue(const std::string& key);
  void enqueue_all();
  void schedule_pass(std::chrono::milliseconds delay);
  net::awaitable<void> run_pass();
  net::awaitable<void> reconcile(const std::string& key);
  // How the objects of one collection that sync owns are written (writes.cpp).
  struct Collection {
    discovery::Kind kind;
    std::string display;                // "ServiceImport", "EndpointSlice", ... for logs
    std::string api_prefix;             // "/apis/flomesh.io/v1alpha1"
    std::string plural;                 // "serviceimports"
    std::vector<std::string> fields;    // the top-level fields sync decides ("spec"; a slice's three)
    bool status = false;                // status.clusters written through /status
    std::string path(const std::string& ns) const { return api_prefix + "/namespaces/" + ns + "/" + plural; }
  };
  static const Collection& flomesh_imports();
  static const Collection& mcs_imports();
  static const Collection& mcs_slices();
  // Creates or updates the object `key` ("namespace/name") of `c` in `m` to `desired` unless it
  // already says that; never touches an object without the managed-by label (counted, logged once).
  net::awaitable<void> write_managed(Member& m, const Collection& c, const std::string& key,
                                     const nlohmann::json& desired);
  // Deletes the managed object `key`, with its resourceVersion as a precondition.
  net::awaitable<void> delete_managed(Member& m, const Collection& c, const std::string& key);
  net::awaitable<void> write_export_status(Member& m, const std::string& key, const ExportVerdict& verdict);
  // The MCS form for member `m` of service `key` (mcs.hpp): the import and one slice per remote
  // exporter; managed slices of the service no longer wanted are deleted when `gc_allowed`.
  net::awaitable<void> reconcile_mcs(Member& m, const std::string& key, const Resolution& r,
                                     const std::vector<Member*>& exporters, bool gc_allowed);
  net::awaitable<void> resolve_gateways();
  void on_member_state();
  void tick();

  boost::asio::io_context& ioc_;
  Config config_;
  std::vector<std::shared_ptr<Member>> members_;
  std::set<std::string> pending_;
  // Keys whose writes failed, retried with discovery's backoff (1 s doubling to 30 s, jittered) so
  // that a lasting failure (RBAC, a missing CRD) is not retried every second; a write that succeeds
  // clears the key's backoff.
  struct Retry {
    Clock::time_point at;
    discovery::Backoff backoff;
  };
  std::map<std::string, Retry> retry_;
  void schedule_retry(const std::string& key);
  boost::asio::steady_timer pass_timer_;
  boost::asio::steady_timer tick_timer_;
  bool pass_scheduled_ = false;
  bool pass_running_ = false;
  bool initial_resync_done_ = false;
  bool first_pass_done_ = false;  // the pass of the initial full resync has gone through every key
  bool stopped_ = false;
  Clock::time_point started_at_{};
  Clock::time_point next_resync_{};
  std::map<std::string, bool> expired_;  // member name -> its exports had expired at the last tick
  std::size_t unknown_count_ = 0;        // unknown_members() at the last tick
  std::set<std::string> reported_conflicts_;  // "member key" ownership conflicts logged once
  Stats stats_;
  std::shared_ptr<LeaderElector> elector_;
};

}  // namespace sluice::sync
