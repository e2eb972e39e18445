// The upstream side both downstream protocols share (HTTP/1.1 in http_session*, HTTP/2 in http2_session*):
// getting a connection to a picked endpoint (pooled, or a new one with TLS / mesh mTLS) and reading the
// endpoint's response head. Worker thread only.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "proxy/upstream_pool.hpp"
#include "routing/picker.hpp"

namespace sluice::proxy {

class Worker;

using upstream_response_parser = http::response_parser<http::buffer_body>;

// "address:port" of a pick.
std::string endpoint_text(const routing::PickResult& p);

// A pooled keep-alive connection to the picked endpoint, else a new one (resolved, connected and, when the
// cluster or mesh TLS says so, TLS-handshaken under timeouts.connect). Null on failure, with `error` saying
// why. Counts connects, reuses and connect failures in the worker's stats.
net::awaitable<std::unique_ptr<UpstreamConnection>> connect_upstream(Worker& worker, const routing::PickResult& picked,
                                                                     std::string& error);

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
net::awaitable<ResponseHeadResult> read_upstream_response_head(Worker& worker, UpstreamConnection& up,
                                                               std::optional<upstream_response_parser>& response,
                                                               bool head_request, const routing::PickResult& picked,
                                                               bool reused);

}  // namespace sluice::proxy
