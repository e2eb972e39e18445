// The upstream side both downstream protocols share (HTTP/1.1 in http_session*, HTTP/2 in http2_session*):
// getting a connection to a picked endpoint (pooled, or a new one with TLS / mesh mTLS) and reading the
// endpoint's response head. Worker thread only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "config/config.hpp"
#include "proxy/head_fields.hpp"
#include "proxy/pooled_frame.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/picker.hpp"

namespace sluice::routing {
struct ClusterEntry;
}

namespace sluice::proxy {

class Worker;

// The HTTP/2 session's response parser (Beast's default allocator); the HTTP/1.1 session's is
// response_head_parser (proxy/head_fields.hpp). read_upstream_response_head takes either.
using upstream_response_parser = http::response_parser<http::buffer_body>;

// "address:port" of a pick.
std::string endpoint_text(const routing::PickResult& p);
// The same into `out`, reusing its storage.
void set_endpoint_text(const routing::PickResult& p, std::string& out);

// The TLS a connection to an endpoint of `cluster` uses: the cluster's own `tls`, else mesh mTLS towards
// another cluster's gateway when the config switches it on; nullopt: plain TCP. Requests and the health
// checker's probes decide alike.
std::optional<config::TlsClient> upstream_tls(const routing::ClusterEntry& cluster,
                                              const std::optional<config::MeshTls>& mesh);

// The addresses to connect to for `host` (an IP literal as is, else resolved). On failure returns the
// resolver's error and leaves `out` empty.
net::awaitable<boost::system::error_code> resolve_upstream(net::io_context& ioc, const std::string& host,
                                                           std::uint16_t port, std::vector<tcp::endpoint>& out);

// Sets SNI (for names, not IP literals) and host-name verification on a client TLS stream about to
// handshake with `host` under `cfg`.
void prepare_client_tls(Stream::tls_type& tls, const config::TlsClient& cfg, const std::string& host);

// A pooled keep-alive connection to the picked endpoint, else a new one (resolved, connected and, when the
// cluster or mesh TLS says so, TLS-handshaken under timeouts.connect). Null on failure, with `error` saying
// why. Counts connects, reuses and connect failures in the worker's stats. `no_descriptors` (when given) is
// set when the connect failed for lack of descriptors here (EMFILE...): not the endpoint's failure.
// `alpn` (wire format, e.g. "\x02h2"): a new connection, never a pooled one, offering these protocols
// over TLS; UpstreamConnection::alpn says what the endpoint chose. Used by the HTTP/2 client
// (proxy/h2_upstream.hpp), with "" for h2c.
// connect_upstream's first step without its coroutine: a pooled HTTP/1.1 connection to `picked` (counted
// as a reuse), else null. `key` is scratch space for the pool key (its capacity reused by the caller).
std::unique_ptr<UpstreamConnection> take_pooled(Worker& worker, const routing::PickResult& picked, std::string& key);

net::awaitable<std::unique_ptr<UpstreamConnection>> connect_upstream(Worker& worker, const routing::PickResult& picked,
                                                                     std::string& error,
                                                                     bool* no_descriptors = nullptr,
                                                                     std::optional<std::string_view> alpn = std::nullopt);

// What reading a response head gave.
struct ResponseHeadResult {
  routing::Outcome outcome = routing::Outcome::success;
  unsigned status = 0;  // 0 when no head came
  std::string failure;  // why, when no head came
};

// Reads the response head into `response` (emplaced here with the configured limits), skipping interim
// 1xx responses but 101, under timeouts.response. `head_request`: the response has no body. `reused`: the
// connection came from the pool (a reset before any byte is then not the endpoint's fault). On failure
// `response` is reset. Tells the picker the endpoint is responding when a head came.
template <class Parser>
net::awaitable<ResponseHeadResult> read_upstream_response_head(Worker& worker, UpstreamConnection& up,
                                                               std::optional<Parser>& response,
                                                               bool head_request, const routing::PickResult& picked,
                                                               bool reused);

}  // namespace sluice::proxy
