#include "proxy/admin.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>

#include "log/logger.hpp"
#include "proxy/server.hpp"
#include "proxy/stream.hpp"
#include "routing/json.hpp"
#include "routing/picker.hpp"
#include "routing/snapshot.hpp"

namespace sluice::proxy {
namespace {

constexpr auto kAdminTimeout = std::chrono::seconds(10);

struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

Reply json_reply(const nlohmann::json& j) {
  return {http::status::ok, "application/json", j.dump(2) + "\n"};
}

// /explain?host=H&path=P[&method=M&listener=L&client=IP&header.NAME=V]
// What the next request would get from `picker` and why. The admin's balancer is its own: each worker
// rotates independently, so "next" is exact for the policy and tier, indicative for the endpoint.
nlohmann::json next_pick(routing::Picker& picker, const routing::RequestView& view, const nlohmann::json& explained) {
  routing::AttemptState attempt;
  auto picked = picker.pick(view, attempt);
  if (picked.status != routing::PickStatus::ok) {
    const char* status = picked.status == routing::PickStatus::no_route ? "no_route (404)"
                         : picked.status == routing::PickStatus::overloaded ? "overloaded (503)"
                                                                            : "no_endpoint (503)";
    return {{"answer", status}, {"why", picked.reason}};
  }
  picker.finish(picked, routing::Outcome::local_abort);  // counts nothing
  std::string policy = "?", lb = "?";
  if (explained.contains("service") && explained["service"].is_object()) {
    policy = explained["service"].value("policy", "?");
    lb = explained["service"].value("load_balancer", "?");
  }
  std::size_t candidates = explained.contains("candidates") ? explained["candidates"].size() : 0;
  return {{"endpoint", picked.address + ":" + std::to_string(picked.port)},
          {"cluster", picked.cluster},
          {"remote", picked.remote},
          {"tier", picked.tier},
          {"upstream_target", picked.upstream_target},
          {"why", "policy " + policy + " puts the request on tier " + std::to_string(picked.tier) + "; " + lb +
                      " picks among " + std::to_string(candidates) +
                      " candidate(s) by their effective weights (each worker keeps its own rotation)"}};
}

Reply explain_reply(const AdminSources& src, routing::Picker& picker, const boost::urls::url_view& url) {
  std::string host, path = "/", method = "GET", listener = src.default_listener, client = "127.0.0.1";
  std::vector<std::pair<std::string, std::string>> headers;
  for (auto param : url.params()) {
    if (param.key == "host") host = param.value;
    else if (param.key == "path") path = param.value;
    else if (param.key == "method") method = param.value;
    else if (param.key == "listener") listener = param.value;
    else if (param.key == "client") client = param.value;
    else if (param.key.starts_with("header.")) headers.emplace_back(param.key.substr(7), param.value);
  }
  if (host.empty()) return {http::status::bad_request, "text/plain; charset=utf-8", "explain: host= is required\n"};
  routing::RequestView view;
  view.listener = listener;
  view.host = host;
  view.target = path;
  view.method = method;
  view.client_address = client;
  view.header = [&headers](std::string_view name) -> std::string_view {
    for (const auto& [k, v] : headers) {
      if (beast::iequals(k, name)) return v;
    }
    return {};
  };
  auto snapshot = src.table->load();
  auto j = routing::explain(*snapshot, view);
  j["request"] = {{"host", host}, {"path", path}, {"method", method}, {"listener", listener}};
  j["snapshot"] = {{"generation", snapshot->generation}, {"source", snapshot->source}, {"stale", snapshot->stale}};
  j["next"] = next_pick(picker, view, j);
  if (src.last_failover && j.contains("service") && j["service"].is_object() && j["service"].contains("id")) {
    j["last_failover_event"] = src.last_failover(j["service"]["id"].get<std::string>());
  }
  if (src.extra_status) src.extra_status(j);
  return json_reply(j);
}

Reply route(const AdminSources& src, routing::Picker& picker, bool draining, std::string_view target) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return {http::status::bad_request, "text/plain; charset=utf-8", "bad request target\n"};
  const auto path = parsed->path();
  if (path == "/live") return {http::status::ok, "text/plain; charset=utf-8", "live\n"};
  if (path == "/ready") {
    if (draining) return {http::status::service_unavailable, "text/plain; charset=utf-8", "draining\n"};
    if (!src.synced()) return {http::status::service_unavailable, "text/plain; charset=utf-8", "not synced yet\n"};
    return {http::status::ok, "text/plain; charset=utf-8", "ready\n"};
  }
  if (path == "/stats" || path == "/metrics") {
    return {http::status::ok, "text/plain; version=0.0.4; charset=utf-8", render_metrics(src)};
  }
  if (path == "/routes") {
    auto j = routing::snapshot_to_json(*src.table->load());
    if (src.extra_status) src.extra_status(j);
    return json_reply(j);
  }
  if (path == "/explain") return explain_reply(src, picker, *parsed);
  if (path == "/") {
    return {http::status::ok, "text/plain; charset=utf-8",
            "sluice admin: /ready /live /stats /routes /explain?host=H&path=P\n"};
  }
  return {http::status::not_found, "text/plain; charset=utf-8", "no such admin path\n"};
}

}  // namespace

Admin::Admin(net::io_context& control, AdminSources sources)
    : control_(control),
      sources_(std::move(sources)),
      picker_(std::make_unique<routing::Picker>(*sources_.table)),
      acceptor_(control),
      accept_retry_(control) {}

Admin::~Admin() { close(); }

std::string Admin::listen(const config::Admin& cfg) {
  boost::system::error_code ec;
  const auto address = net::ip::make_address(cfg.address, ec);
  if (ec) return "admin: bad address \"" + cfg.address + "\"";
  const tcp::endpoint ep(address, cfg.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return "admin " + cfg.address + ":" + std::to_string(cfg.port) + ": " + ec.message();
  return {};
}

tcp::endpoint Admin::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void Admin::start() { net::co_spawn(control_, accept_loop(), net::detached); }

void Admin::close() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  accept_retry_.cancel();
}

net::awaitable<void> Admin::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_nothrow);
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      // Out of descriptors (EMFILE) leaves the connection in the backlog and the socket readable: retrying
      // at once would spin the control thread, which also runs health checks and probes. The workers log it.
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      co_await accept_retry_.async_wait(use_nothrow);
      continue;
    }
    net::co_spawn(control_, serve(std::move(socket)), net::detached);
  }
}

net::awaitable<void> Admin::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(16 * 1024);
    parser.body_limit(64 * 1024);
    stream.expires_after(kAdminTimeout);
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_nothrow);
    if (ec) break;
    const auto& req = parser.get();
    Reply reply = req.method() == http::verb::get || req.method() == http::verb::head
                      ? route(sources_, *picker_, draining_.load(std::memory_order_relaxed), req.target())
                      : Reply{http::status::method_not_allowed, "text/plain; charset=utf-8", "GET only\n"};
    http::response<http::string_body> res{reply.status, req.version()};
    res.set(http::field::server, "sluice-admin");
    res.set(http::field::content_type, reply.content_type);
    res.body() = std::move(reply.body);
    res.keep_alive(req.keep_alive());
    res.prepare_payload();
    stream.expires_after(kAdminTimeout);
    auto [wec, wn] = co_await http::async_write(stream, res, use_nothrow);
    if (wec || !res.keep_alive()) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
}

}  // namespace sluice::proxy
