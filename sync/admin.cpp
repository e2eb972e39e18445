#include "sync/admin.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>

#include "log/logger.hpp"
#include "prometheus/writer.hpp"
#include "sync/controller.hpp"

namespace sluice::sync {
namespace {

using boost::system::error_code;
constexpr auto admin_timeout = std::chrono::seconds(10);

class AdminServer : public Admin, public std::enable_shared_from_this<AdminServer> {
 public:
  AdminServer(boost::asio::io_context& ioc, std::shared_ptr<Controller> controller)
      : acceptor_(ioc), controller_(std::move(controller)) {}

  bool listen(const std::string& address, unsigned short port, std::string& error) {
    error_code ec;
    auto addr = net::ip::make_address(address, ec);
    if (ec) {
      error = "address \"" + address + "\": " + ec.message();
      return false;
    }
    tcp::endpoint ep(addr, port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      error = address + ":" + std::to_string(port) + ": " + ec.message();
      return false;
    }
    log::info("sync: admin listening on " + address + ":" + std::to_string(acceptor_.local_endpoint().port()));
    return true;
  }

  void run() {
    net::co_spawn(acceptor_.get_executor(), [self = shared_from_this()]() { return self->accept_loop(); },
                  net::detached);
  }

  void stop() override {
    error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  net::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (acceptor_.is_open()) {
      error_code ec;
      tcp::socket socket = co_await acceptor_.async_accept(net::redirect_error(net::use_awaitable, ec));
      if (ec) {
        if (!acceptor_.is_open()) co_return;
        continue;
      }
      net::co_spawn(acceptor_.get_executor(), serve(std::move(socket)), net::detached);
    }
  }

  net::awaitable<void> serve(tcp::socket socket) {
    auto self = shared_from_this();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request<http::string_body> req;
      error_code ec;
      stream.expires_after(admin_timeout);
      co_await http::async_read(stream, buffer, req, net::redirect_error(net::use_awaitable, ec));
      if (ec) co_return;
      http::response<http::string_body> res{http::status::ok, req.version()};
      res.set(http::field::content_type, "text/plain");
      auto url = boost::urls::parse_origin_form(req.target());
      std::string path = url ? std::string(url->path()) : std::string(req.target());
      if (req.method() != http::verb::get) {
        res.result(http::status::method_not_allowed);
        res.body() = "GET only\n";
      } else if (path == "/live") {
        res.body() = "alive\n";
      } else if (path == "/ready") {
        const bool ready = controller_->ready();
        res.result(ready ? http::status::ok : http::status::service_unavailable);
        res.body() = ready ? "ready\n" : "not ready: waiting for every member's first list\n";
      } else if (path == "/stats") {
        res.set(http::field::content_type, "text/plain; version=0.0.4");
        res.body() = render_stats(*controller_);
      } else if (path == "/explain") {
        std::string service;
        if (url)
          for (auto p : url->params())
            if (p.key == "service") service = p.value;
        res.set(http::field::content_type, "application/json");
        res.body() = controller_->explain(service) + "\n";
      } else {
        res.result(http::status::not_found);
        res.body() = "not found: /live, /ready, /stats, /explain?service=ns/name\n";
      }
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      co_await http::async_write(stream, res, net::redirect_error(net::use_awaitable, ec));
      if (ec || !res.keep_alive()) co_return;
    }
  }

  tcp::acceptor acceptor_;
  std::shared_ptr<Controller> controller_;
};

// Owns the server through a shared_ptr so that its coroutines can keep it alive.
class AdminHandle : public Admin {
 public:
  explicit AdminHandle(std::shared_ptr<AdminServer> server) : server_(std::move(server)) {}
  ~AdminHandle() override { server_->stop(); }
  void stop() override { server_->stop(); }

 private:
  std::shared_ptr<AdminServer> server_;
};

}  // namespace

std::unique_ptr<Admin> Admin::start(boost::asio::io_context& ioc, const std::string& address, unsigned short port,
                                    std::shared_ptr<Controller> controller, std::string& error) {
  auto server = std::make_shared<AdminServer>(ioc, std::move(controller));
  if (!server->listen(address, port, error)) return nullptr;
  server->run();
  return std::make_unique<AdminHandle>(std::move(server));
}

std::string render_stats(const Controller& c) {
  std::string out;
  prometheus::Writer w(out);
  const Stats& s = c.stats();
  w.family("sluice_sync_reconciles_total", prometheus::Type::counter, "Keys (namespace/name) reconciled.");
  w.sample(s.reconciles);
  w.family("sluice_sync_passes_total", prometheus::Type::counter, "Reconcile passes (a burst of keys is one).");
  w.sample(s.passes);
  w.family("sluice_sync_resyncs_total", prometheus::Type::counter, "Full resyncs (start, period, member changes).");
  w.sample(s.resyncs);
  w.family("sluice_sync_writes_total", prometheus::Type::counter, "Successful writes to member API servers by verb.");
  for (const char* verb : {"create", "update", "update_status", "delete"}) {
    auto it = s.writes.find(verb);
    w.sample({{"verb", verb}}, it == s.writes.end() ? std::uint64_t{0} : it->second);
  }
  w.family("sluice_sync_write_conflicts_total", prometheus::Type::counter, "Writes answered 409 (re-read, retried).");
  w.sample(s.write_conflicts);
  w.family("sluice_sync_write_failures_total", prometheus::Type::counter, "Writes that failed otherwise (retried).");
  w.sample(s.write_failures);
  w.family("sluice_sync_ownership_conflicts_total", prometheus::Type::counter,
           "Imports sync would change but does not own (no managed-by label).");
  w.sample(s.ownership_conflicts);
  w.family("sluice_sync_gc_deferred_total", prometheus::Type::counter,
           "Deletes held back while a member was not listed or not reachable.");
  w.sample(s.gc_deferred);
  w.family("sluice_sync_member_synced", prometheus::Type::gauge, "1 when the member has listed every resource once.");
  for (const auto& m : c.members()) w.sample({{"member", m->config().name}}, m->synced());
  w.family("sluice_sync_member_reachable", prometheus::Type::gauge, "1 when every watch of the member is healthy.");
  for (const auto& m : c.members()) w.sample({{"member", m->config().name}}, m->reachable());
  w.family("sluice_sync_members_reachable", prometheus::Type::gauge, "Members reachable now.");
  std::uint64_t reachable = 0;
  for (const auto& m : c.members()) reachable += m->reachable() ? 1 : 0;
  w.sample(reachable);
  w.family("sluice_sync_ready", prometheus::Type::gauge, "1 once the first full resync has run.");
  w.sample(c.ready());
  w.family("sluice_sync_leader", prometheus::Type::gauge,
           "1 while this replica writes (holds the Lease, or no leader election configured).");
  w.sample(c.leading());
  return out;
}

}  // namespace sluice::sync
