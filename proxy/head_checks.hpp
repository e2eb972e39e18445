// Message heads from outside, as pure functions (no socket, no worker). Downstream: HeadScanner's verdicts
// and Beast's parse errors mapped to the status the proxy answers, the parser set up with the proxy's
// limits, and the RFC 9112 checks on the parsed head (with the absolute-form rewrite). Upstream: the
// response parser's limits and which statuses end the wait for a response head. The sessions use them;
// so do the fuzzers (tests/fuzz/), which is why they live apart from the sessions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/status.hpp>

#include "net/net.hpp"
#include "proxy/head_fields.hpp"
#include "proxy/head_scanner.hpp"

namespace sluice::proxy {

// Why a request is answered by the proxy itself instead of being routed.
struct HeadRefusal {
  http::status status = http::status::bad_request;
  std::string reason;  // never empty: the answer's body and the access log's error
};

// The answer to a HeadScanner verdict other than need_more and complete: 431 when a limit was hit
// (bytes, field count), else 400.
HeadRefusal refusal_of(HeadScan scan);

// The answer to a head Beast's parser refused (`ec` set) or did not finish (`ec` clear): 431 past the
// header limit, else 400.
HeadRefusal refusal_of_parse(const boost::system::error_code& ec);

// Readies a fresh parser for one request: `max_header_bytes` (limits.max_request_header_bytes) as Beast's
// header limit, no body limit (bodies are streamed), not eager (the head is parsed alone first).
void prepare_request_parser(request_head_parser& parser, std::size_t max_header_bytes);

// The checks on a parsed head before routing (RFC 9112): HTTP/1.0 or 1.1 only (505), Host present in
// HTTP/1.1 and not repeated, Transfer-Encoding only as HTTP/1.1 chunked framing, an origin-form target
// (or `*`/authority for OPTIONS). An absolute-form target is rewritten in `req` to origin form, its
// authority replacing Host. On success sets `authority` (Host, possibly from the absolute form) and
// returns nullopt.
std::optional<HeadRefusal> check_request_head(request_head& req, std::string& authority);

// Readies a fresh parser for one upstream response: `max_header_bytes` (limits.max_response_header_bytes)
// as the header limit, no body limit; `head_request`: the response to a HEAD has no body.
// Any response parser (the HTTP/2 session's has Beast's default allocator).
template <class Parser>
void prepare_response_parser(Parser& parser, std::size_t max_header_bytes, bool head_request) {
  parser.header_limit(max_header_bytes);
  parser.body_limit(boost::none);
  if (head_request) parser.skip(true);
}

// Whether an upstream's status code may be relayed: RFC 9110 15 says values outside 100..599 are invalid.
// Beast reads any three digits, "000" and "051" included; relayed, such a status reaches the client as
// is, and status / 100 no longer names a class (found by tests/fuzz/fuzz_response_head). The proxy treats
// such a response like any malformed one: 502, and the connection is not reused.
constexpr bool is_valid_status(unsigned status) { return status >= 100 && status <= 599; }

// Whether a response head with `status` is the one to relay: interim 1xx responses are skipped, but 101
// (the switch to a tunnel) and anything outside 1xx are final.
constexpr bool is_final_response(unsigned status) { return status < 100 || status >= 200 || status == 101; }

}  // namespace sluice::proxy
