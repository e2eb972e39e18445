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

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
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

// RFC 9112 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT, the last token of the request line.
enum class LineVersion { unknown, v10, v11, newer_minor, other_major };

// The version of `line` (a request line without its CRLF): `unknown` when it does not end in a well-formed
// HTTP-version (Beast's parser then says what is wrong with it). The session reads it off the raw request
// line, before Beast's parser exists, to answer an HTTP/1.0 client's errors in HTTP/1.0.
LineVersion request_line_version(std::string_view line);

// RFC 9112 2.3 on a complete raw head (`head`, what HeadScanner accepted, request line first): "HTTP/1.x"
// with x > 1 is taken as HTTP/1.1, so its minor digit is rewritten in place (same length: Beast's parser
// refuses any version but 1.0 and 1.1); another major version is not ours: 505, returned.
std::optional<HeadRefusal> normalize_request_version(char* head, std::size_t size);

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

// Feeds `parser` (readied by prepare_response_parser with `max_header_bytes`) the bytes `buffer` holds,
// consuming what it parsed; `head_bytes` (0 for a fresh parser) counts the head's bytes consumed so far.
// Beast 1.81 applies its header limit to a window starting where its parse stands, not to the head as a
// whole: a head arriving in pieces is parsed and consumed a field at a time, and the window then starts
// again after the fields already taken, as the fields' window starts after the status line. A head of two
// or three times the limit got through that way (found by tests/fuzz/fuzz_response_head). Here the
// window shrinks with every byte consumed, and a head that still went past the limit is refused, so the
// limit holds for the head, and at most `max_header_bytes` of it is ever held (consumed plus buffered).
// Returns true when that settled it: the head is done or `ec` says why not (http::error::header_limit
// past the limit); false, `ec` clear, when the parser needs more bytes from the socket.
template <class Parser>
bool parse_response_head(Parser& parser, beast::flat_buffer& buffer, std::size_t max_header_bytes,
                         std::size_t& head_bytes, boost::system::error_code& ec) {
  ec = {};
  if (parser.is_header_done()) return true;
  if (buffer.size() == 0) return false;
  // What is left of the limit; 0 makes Beast answer header_limit at once.
  parser.header_limit(static_cast<std::uint32_t>(head_bytes < max_header_bytes ? max_header_bytes - head_bytes : 0));
  const std::size_t used = parser.put(buffer.data(), ec);
  buffer.consume(used);
  head_bytes += used;
  // One put may still take more than the window: the status line, then fields in a window of their own.
  if (head_bytes > max_header_bytes) {
    ec = http::error::header_limit;
    return true;
  }
  if (ec == http::error::need_more) {
    ec = {};
    return false;
  }
  return true;
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
