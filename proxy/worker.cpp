#include "proxy/worker.hpp"

#include <sys/socket.h>

#include <future>
#include <unordered_set>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>

#include "log/logger.hpp"
#include "proxy/http_session.hpp"
#include "proxy/mailbox.hpp"
#include "routing/snapshot.hpp"

namespace sluice::proxy {
namespace {

constexpr auto kSweepInterval = std::chrono::seconds(1);
// Out of descriptors on accept: the connection stays in the backlog and the listening socket stays readable,
// so an immediate retry would spin. Retry after 100 ms, doubling to 1 s; a connection that closes (freeing a
// descriptor) wakes the acceptor sooner.
constexpr std::chrono::milliseconds kNoDescriptorsFirstBackoff{100};
constexpr std::chrono::milliseconds kNoDescriptorsMaxBackoff{1000};
// At most one warning per worker in this interval, however many accepts fail meanwhile (they are counted).
constexpr auto kNoDescriptorsLogInterval = std::chrono::seconds(10);

}  // namespace

// One thread runs the worker's io_context, every socket of the worker is opened, used and closed on that
// thread, and other threads hand it work (drain, stop) through a Mailbox, never net::post. So the
// io_context's locks guard nothing: UNSAFE drops them all, the reactor's per-descriptor ones (a lock and
// an unlock per readiness report and per operation started, 14 % of a relayed WebSocket message's
// instructions) and the scheduler's (one pair per handler run, 6-8 % more; tests/bench/README.md).
constexpr int kWorkerConcurrencyHint = BOOST_ASIO_CONCURRENCY_HINT_UNSAFE;

bool out_of_descriptors(const boost::system::error_code& ec) {
  return ec == net::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system ||
         ec == net::error::no_buffer_space || ec == net::error::no_memory;
}

Worker::Worker(unsigned index, const WorkerSettings& settings, const routing::Table& table,
               net::io_context* external)
    : index_(index),
      settings_(settings),
      picker_(table),
      own_ioc_(external ? nullptr : std::make_unique<net::io_context>(kWorkerConcurrencyHint)),
      ioc_(external ? *external : *own_ioc_),
      mailbox_(external ? nullptr : std::make_unique<Mailbox>(ioc_)),
      pool_(settings.upstream),
      h2_pool_(settings.upstream.idle_timeout) {}

Worker::~Worker() {
  stop();
  pool_.close_all();
  h2_pool_.close_all();
  acceptors_.clear();
}

std::string Worker::add_listener(std::shared_ptr<const ListenerInfo> listener) {
  const auto& cfg = listener->cfg;
  boost::system::error_code ec;
  const auto address = net::ip::make_address(cfg.address, ec);
  if (ec) return "listener " + cfg.name + ": bad address \"" + cfg.address + "\"";
  const tcp::endpoint endpoint(address, cfg.port);
  auto a = std::make_unique<Acceptor>(Acceptor{std::move(listener), tcp::acceptor(ioc_), net::steady_timer(ioc_)});
  auto& acc = a->acceptor;
  const auto where = cfg.name + " (" + cfg.address + ":" + std::to_string(cfg.port) + ")";
  acc.open(endpoint.protocol(), ec);
  if (ec) return "listener " + where + ": " + ec.message();
  acc.set_option(tcp::acceptor::reuse_address(true), ec);
  // Every worker binds the same port; the kernel spreads new connections across them.
  int one = 1;
  if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return "listener " + where + ": SO_REUSEPORT not supported";
  }
  acc.bind(endpoint, ec);
  if (ec) return "listener " + where + ": cannot bind: " + ec.message();
  acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return "listener " + where + ": " + ec.message();
  acceptors_.push_back(std::move(a));
  return {};
}

void Worker::start() {
  started_ = true;
  // Counted so that stop() on an external io_context knows when the loops have ended. The count is
  // touched on the worker's thread only: the loops are started there too. A post, not the mailbox: on the
  // worker's own io_context the thread that runs it does not exist yet (its creation orders the two).
  net::post(ioc_, [this] {
    for (auto& a : acceptors_) {
      ++accepting_;
      net::co_spawn(ioc_, accept_loop(*a), [this](std::exception_ptr) {
        --accepting_;
        check_quiet_soon();
      });
    }
    arm_sweep();
  });
  if (own_ioc_) thread_ = std::thread([this] { ioc_.run(); });
}

// Accepts while the worker has room (limits.max_connections_per_worker) and descriptors; otherwise pauses,
// leaving new connections in the kernel's backlog, and goes on serving the connections it has.
net::awaitable<void> Worker::accept_loop(Acceptor& a) {
  const auto max_connections = static_cast<std::int64_t>(settings_.limits.max_connections_per_worker);
  std::chrono::milliseconds backoff{0};  // non-zero: backing off after running out of descriptors
  for (;;) {
    if (stats_.downstream_active_connections.get() >= max_connections) {
      stats_.accept_paused.add();
      log::debug("listener " + a.listener->cfg.name + ": " + std::to_string(max_connections) +
                 " connections open on worker " + std::to_string(index_) + ", accepting paused");
      co_await pause_accepting(a, std::nullopt);
      if (!a.acceptor.is_open()) co_return;
      continue;
    }
    auto [ec, socket] = co_await a.acceptor.async_accept(use_nothrow);
    if (ec) {
      if (ec == net::error::operation_aborted || !a.acceptor.is_open()) co_return;
      if (out_of_descriptors(ec)) {
        stats_.accept_no_descriptors.add();
        backoff = backoff.count() == 0 ? kNoDescriptorsFirstBackoff : std::min(backoff * 2, kNoDescriptorsMaxBackoff);
        warn_no_descriptors(a, ec);
        co_await pause_accepting(a, backoff);
        if (!a.acceptor.is_open()) co_return;
        continue;
      }
      log::warn("accept on " + a.listener->cfg.name + ": " + ec.message());
      continue;
    }
    if (backoff.count() != 0) {
      log::info("listener " + a.listener->cfg.name + ": accepting again on worker " + std::to_string(index_));
      backoff = std::chrono::milliseconds{0};
    }
    boost::system::error_code opt_ec;
    socket.set_option(tcp::no_delay(true), opt_ec);
    auto remote = socket.remote_endpoint(opt_ec);
    std::string client_ip = opt_ec ? std::string("unknown") : remote.address().to_string();
    auto stream = a.listener->tls ? Stream(std::move(socket), a.listener->tls->get()) : Stream(std::move(socket));
    auto session = std::make_shared<HttpSession>(*this, a.listener, std::move(stream), std::move(client_ip));
    net::co_spawn(ioc_, session->run(), net::detached);
  }
}

net::awaitable<void> Worker::pause_accepting(Acceptor& a, std::optional<std::chrono::milliseconds> backoff) {
  a.paused = true;
  stats_.acceptors_paused.inc();
  if (backoff) {
    a.resume.expires_after(*backoff);
  } else {
    a.resume.expires_at(std::chrono::steady_clock::time_point::max());
  }
  co_await a.resume.async_wait(use_nothrow);  // cancelled (woken) by unregister_session or close_acceptors
  a.paused = false;
  stats_.acceptors_paused.dec();
}

void Worker::warn_no_descriptors(const Acceptor& a, const boost::system::error_code& ec) {
  const auto now = std::chrono::steady_clock::now();
  if (no_descriptors_logged_ != std::chrono::steady_clock::time_point{} &&
      now - no_descriptors_logged_ < kNoDescriptorsLogInterval) {
    ++no_descriptors_unlogged_;
    return;
  }
  std::string text = "accept on " + a.listener->cfg.name + " (worker " + std::to_string(index_) + "): " +
                     ec.message() + "; accepting backs off (100 ms, up to 1 s) until descriptors free up, "
                     "open connections are still served";
  if (no_descriptors_unlogged_ != 0) {
    text += " (" + std::to_string(no_descriptors_unlogged_) + " more failures since the last warning)";
  }
  log::warn(text);
  no_descriptors_logged_ = now;
  no_descriptors_unlogged_ = 0;
}

void Worker::arm_sweep() {
  sweep_timer_.expires_after(kSweepInterval);
  sweep_pending_ = true;
  sweep_timer_.async_wait([this](boost::system::error_code ec) {
    sweep_pending_ = false;
    if (ec || stopped_) return check_quiet_soon();
    pool_.sweep(std::chrono::steady_clock::now());
    h2_pool_.sweep(std::chrono::steady_clock::now());
    prune_pool();
    arm_sweep();
  });
}

// Idle upstream connections to endpoints that left the routing table are closed, not kept for reuse.
// Runs once per new snapshot generation, on the worker's thread (off the request path, from the sweep).
void Worker::prune_pool() {
  const auto& snapshot = picker_.snapshot();
  if (snapshot->generation == pooled_generation_ || (pool_.idle_count() == 0 && h2_pool_.empty())) return;
  pooled_generation_ = snapshot->generation;
  std::unordered_set<std::string> live;
  for (const auto& svc : snapshot->services) {
    for (const auto& ep : svc.endpoints) {
      auto key = std::string(ep.address) + ":" + std::to_string(ep.port);
      live.insert(key + "|tls");
      live.insert(std::move(key));
    }
  }
  pool_.forget_except(live);
  h2_pool_.forget_except(live);
}

void Worker::close_acceptors() {
  for (auto& a : acceptors_) {
    boost::system::error_code ignored;
    a->acceptor.close(ignored);
    a->resume.cancel();  // a paused loop sees the acceptor closed and ends
  }
  // on_drain may close a session, which unregisters it: iterate over a copy.
  std::vector<HttpSession*> sessions(sessions_.begin(), sessions_.end());
  for (auto* s : sessions) s->on_drain();
}

void Worker::drain() {
  draining_.store(true, std::memory_order_relaxed);
  run_on_worker([this] { close_acceptors(); });
}

void Worker::run_on_worker(std::function<void()> work) {
  if (mailbox_) {
    mailbox_->send(std::move(work));
  } else {
    net::post(ioc_, std::move(work));
  }
}

void Worker::stop() {
  if (!own_ioc_) return stop_external();
  if (!thread_.joinable()) return;
  // Connections still open at this point (the drain deadline passed) are cut on the worker's thread,
  // where a tunnel can still say goodbye (WebSocket 1001); then the loop stops.
  auto cut = std::make_shared<std::promise<void>>();
  auto done = cut->get_future();
  run_on_worker([this, cut] {
    sweep_timer_.cancel();
    std::vector<HttpSession*> sessions(sessions_.begin(), sessions_.end());
    for (auto* s : sessions) s->abort();
    pool_.close_all();
    h2_pool_.close_all();
    cut->set_value();
  });
  done.wait_for(std::chrono::seconds(1));  // a loop stuck elsewhere must not hold the stop up
  run_on_worker([this] { ioc_.stop(); });
  thread_.join();
  pool_.close_all();
  h2_pool_.close_all();
}

// The io_context is the program's: it cannot be stopped, and every handler that refers to this worker
// must have run before the worker goes. Close what we can, then wait on the io_context's thread until the
// accept loops, the sweep and every connection have ended.
void Worker::stop_external() {
  if (!started_ || stop_requested_) return;
  stop_requested_ = true;
  draining_.store(true, std::memory_order_relaxed);
  // Shared: set_value may still be returning on the io_context's thread when this thread wakes up.
  auto quiet = std::make_shared<std::promise<void>>();
  auto done = quiet->get_future();
  net::post(ioc_, [this, quiet] {
    stopped_ = true;
    sweep_timer_.cancel();
    close_acceptors();
    // As on the worker's own io_context, requests still in flight are cut (drain first to let them end).
    std::vector<HttpSession*> sessions(sessions_.begin(), sessions_.end());
    for (auto* s : sessions) s->abort();
    pool_.close_all();
    h2_pool_.close_all();
    await_quiet([quiet] { quiet->set_value(); });
  });
  done.wait();
}

void Worker::await_quiet(std::function<void()> done) {
  quiet_done_ = std::move(done);
  check_quiet();
}

void Worker::unregister_session(std::list<HttpSession*>::iterator it) {
  sessions_.erase(it);
  for (auto& a : acceptors_) {
    if (a->paused) a->resume.cancel();
  }
  check_quiet_soon();
}

// Called where an accept loop, the sweep or a connection has just ended. Not done() there and then: the
// caller (a session's destructor, a completion handler) still touches the worker after this returns, and
// done() lets stop_external()'s thread destroy it. One check posted at a time, so none is left pending
// (pointing at a destroyed worker) once done() has run.
void Worker::check_quiet_soon() {
  if (!quiet_done_ || quiet_check_posted_) return;
  quiet_check_posted_ = true;
  net::post(ioc_, [this] {
    quiet_check_posted_ = false;
    check_quiet();
  });
}

void Worker::check_quiet() {
  if (!quiet_done_ || accepting_ != 0 || sweep_pending_ || !sessions_.empty()) return;
  // Moved out first: done() may let the worker be destroyed, quiet_done_ with it.
  auto done = std::move(quiet_done_);
  quiet_done_ = nullptr;
  done();
}

}  // namespace sluice::proxy
