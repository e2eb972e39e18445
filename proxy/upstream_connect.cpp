#include "proxy/upstream_connect.hpp"

#include <charconv>

#include <openssl/x509v3.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/read_size.hpp>
#include <boost/beast/http/error.hpp>

#include "proxy/head_checks.hpp"
#include "proxy/worker.hpp"
#include "routing/snapshot.hpp"

namespace sluice::proxy {

std::string endpoint_text(const routing::PickResult& p) {
  std::string text;
  set_endpoint_text(p, text);
  return text;
}

void set_endpoint_text(const routing::PickResult& p, std::string& out) {
  char port[8];
  const auto [end, ec] = std::to_chars(port, port + sizeof port, p.port);
  (void)ec;  // a uint16_t fits
  out.assign(p.address).append(":").append(port, end);
}

std::optional<config::TlsClient> upstream_tls(const routing::ClusterEntry& cluster,
                                              const std::optional<config::MeshTls>& mesh) {
  if (cluster.tls) return cluster.tls;
  if (!cluster.local && mesh) return config::TlsClient{mesh->ca_file, mesh->cert_file, mesh->key_file, ""};
  return std::nullopt;
}

net::awaitable<boost::system::error_code> resolve_upstream(net::io_context& ioc, const std::string& host,
                                                           std::uint16_t port, std::vector<tcp::endpoint>& out) {
  boost::system::error_code ec;
  const auto address = net::ip::make_address(host, ec);
  if (!ec) {
    out.emplace_back(address, port);
    co_return ec;
  }
  tcp::resolver resolver(ioc);
  auto [rec, results] = co_await resolver.async_resolve(host, std::to_string(port), use_nothrow);
  for (const auto& r : results) out.push_back(r.endpoint());
  co_return rec;
}

void prepare_client_tls(Stream::tls_type& tls, const config::TlsClient& cfg, const std::string& host) {
  const std::string& name = cfg.server_name.empty() ? host : cfg.server_name;
  boost::system::error_code not_ip;
  if (net::ip::make_address(name, not_ip), not_ip) {
    SSL_set_tlsext_host_name(tls.native_handle(), name.c_str());  // SNI takes names, not IPs
  }
  // The certificate must name `name` (a DNS name, or an IP address in its IP SANs): OpenSSL checks it after
  // the chain, as Asio's host_name_verification did.
  X509_VERIFY_PARAM* param = SSL_get0_param(tls.native_handle());
  if (not_ip) {
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(param, name.data(), name.size());
  } else {
    X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
  }
}

std::unique_ptr<UpstreamConnection> take_pooled(Worker& worker, const routing::PickResult& picked, std::string& key) {
  // upstream_tls() without its copy of the TLS settings: only whether there are some matters for the key.
  const auto& cluster = picked.service->clusters[picked.endpoint->cluster];
  set_endpoint_text(picked, key);
  if (cluster.tls || (!cluster.local && worker.settings().mesh_tls)) key += "|tls";
  auto conn = worker.pool().take(key);
  if (conn) worker.stats().upstream_reuses.add();
  return conn;
}

net::awaitable<std::unique_ptr<UpstreamConnection>> connect_upstream(Worker& worker, const routing::PickResult& picked,
                                                                     std::string& error, bool* no_descriptors,
                                                                     std::optional<std::string_view> alpn) {
  auto& stats = worker.stats();
  const std::optional<config::TlsClient> tls_cfg =
      upstream_tls(picked.service->clusters[picked.endpoint->cluster], worker.settings().mesh_tls);
  std::string key = endpoint_text(picked);
  if (tls_cfg) key += "|tls";
  if (alpn) key += "|h2";
  if (auto conn = alpn ? nullptr : worker.pool().take(key)) {
    stats.upstream_reuses.add();
    co_return conn;
  }
  stats.upstream_connects.add();
  std::shared_ptr<ssl::context> tls_ctx;
  if (tls_cfg) {
    tls_ctx = worker.client_tls().get(*tls_cfg, error);
    if (!tls_ctx) {
      stats.upstream_connect_failures.add();
      error = "upstream tls for " + key + ": " + error;
      co_return nullptr;
    }
  }
  std::vector<tcp::endpoint> targets;
  if (auto rec = co_await resolve_upstream(worker.ioc(), picked.address, picked.port, targets)) {
    stats.upstream_connect_failures.add();
    error = "cannot resolve upstream " + key + ": " + rec.message();
    co_return nullptr;
  }
  auto conn = std::make_unique<UpstreamConnection>(
      tls_ctx ? Stream(tcp::socket(worker.ioc()), tls_ctx) : Stream(tcp::socket(worker.ioc())), key);
  // The socket is opened here, not by the connect: a shortage of descriptors (EMFILE...) is then told apart
  // from the endpoint's failure (a connect over a range reports its own error for a socket it could not open).
  boost::system::error_code oec;
  conn->stream.transport().socket().open(targets.front().protocol(), oec);
  if (oec) {
    if (no_descriptors && out_of_descriptors(oec)) *no_descriptors = true;
    stats.upstream_connect_failures.add();
    error = "no socket for upstream " + key + ": " + oec.message();
    co_return nullptr;
  }
  conn->stream.transport().expires_after(worker.settings().timeouts.connect);
  boost::system::error_code cec;
  if (targets.size() == 1) {
    // One address (an IP literal, the usual case): connect the socket just opened.
    std::tie(cec) = co_await conn->stream.transport().async_connect(targets.front(), use_nothrow);
  } else {
    // Several (a name): each is tried in turn on a fresh socket.
    std::tie(cec, std::ignore) = co_await conn->stream.transport().async_connect(targets, use_nothrow);
  }
  if (cec) {
    stats.upstream_connect_failures.add();
    error = "upstream connect to " + key + " failed: " +
            (cec == beast::error::timeout ? std::string("timeout") : cec.message());
    co_return nullptr;
  }
  boost::system::error_code ec;
  conn->stream.transport().socket().set_option(tcp::no_delay(true), ec);
  conn->stream.transport().socket().non_blocking(true, ec);  // for write_framed's synchronous first try
  if (auto* tls = conn->stream.tls()) {
    prepare_client_tls(*tls, *tls_cfg, picked.address);
    if (alpn && !alpn->empty()) {
      SSL_set_alpn_protos(tls->native_handle(), reinterpret_cast<const unsigned char*>(alpn->data()),
                          static_cast<unsigned>(alpn->size()));
    }
    offer_client_session(tls->native_handle(), conn->pool_key);
    conn->stream.expires_after(worker.settings().timeouts.connect);
    auto [hec] = co_await tls->async_handshake(ssl::stream_base::client, use_nothrow);
    if (hec) {
      stats.upstream_connect_failures.add();
      error = "upstream tls handshake with " + key + " failed: " + hec.message();
      co_return nullptr;
    }
    if (SSL_session_reused(tls->native_handle())) stats.upstream_tls_resumptions.add();
    conn->stream.expires_never();  // the request's own deadlines take over
    prepare_drained_reads(conn->stream.transport().socket());  // TLS reads then wait instead of trying
    const unsigned char* chosen = nullptr;
    unsigned chosen_len = 0;
    SSL_get0_alpn_selected(tls->native_handle(), &chosen, &chosen_len);
    conn->alpn.assign(reinterpret_cast<const char*>(chosen), chosen_len);
  }
  co_return conn;
}

template <class Parser>
net::awaitable<ResponseHeadResult> read_upstream_response_head(Worker& worker, UpstreamConnection& up,
                                                               std::optional<Parser>& response,
                                                               bool head_request, const routing::PickResult& picked,
                                                               bool reused) {
  ResponseHeadResult r;
  // One deadline for the final head, 1xx heads before it included: an endpoint that keeps sending
  // 100 Continue or 103 Early Hints does not hold the request past timeouts.response.
  const auto deadline = std::chrono::steady_clock::now() + worker.settings().timeouts.response;
  for (;;) {
    response.emplace();
    prepare_response_parser(*response, worker.settings().limits.max_response_header_bytes, head_request);
    up.stream.set_deadline(deadline);
    // Not http::async_read_header: its parser's header limit does not hold for a head arriving in pieces
    // (parse_response_head says why), so the head is parsed here, between reads.
    std::size_t head_bytes = 0;
    boost::system::error_code ec;
    while (!parse_response_head(*response, up.buffer, worker.settings().limits.max_response_header_bytes,
                                head_bytes, ec)) {
      auto [rec, n] = co_await up.stream.async_read_some(up.buffer.prepare(beast::read_size(up.buffer, 65536)),
                                                         use_nothrow);
      up.buffer.commit(n);
      if (rec == net::error::eof) {
        // As Beast's read says it: closed mid-head, or before a byte of it.
        ec = head_bytes != 0 || up.buffer.size() != 0 ? http::error::partial_message : http::error::end_of_stream;
        break;
      }
      if (rec) {
        ec = rec;
        break;
      }
    }
    up.stream.clear_deadline();  // one deadline for the whole head, however many reads it takes
    if (ec) {
      response.reset();
      if (ec == beast::error::timeout || up.stream.deadline_passed()) {
        r.outcome = routing::Outcome::timeout;
        r.failure = "upstream response timeout from " + endpoint_text(picked);
      } else {
        r.outcome = reused ? routing::Outcome::reset_reused : routing::Outcome::reset;
        r.failure = "upstream " + endpoint_text(picked) + " closed before responding: " + ec.message();
      }
      co_return r;
    }
    r.status = response->get().result_int();
    if (!is_valid_status(r.status)) {
      r.outcome = reused ? routing::Outcome::reset_reused : routing::Outcome::reset;
      r.failure = "upstream " + endpoint_text(picked) + " sent an invalid status code " + std::to_string(r.status);
      r.status = 0;
      response.reset();
      co_return r;
    }
    if (is_final_response(r.status)) break;
  }
  worker.picker().responding(picked);
  r.outcome = routing::outcome_of_status(r.status);
  co_return r;
}

template net::awaitable<ResponseHeadResult> read_upstream_response_head<upstream_response_parser>(
    Worker&, UpstreamConnection&, std::optional<upstream_response_parser>&, bool, const routing::PickResult&, bool);
template net::awaitable<ResponseHeadResult> read_upstream_response_head<response_head_parser>(
    Worker&, UpstreamConnection&, std::optional<response_head_parser>&, bool, const routing::PickResult&, bool);

}  // namespace sluice::proxy
