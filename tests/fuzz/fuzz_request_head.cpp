// Downstream request path: the bytes a client sends, arriving in pieces, through what HttpSession does
// with them (proxy/head_checks.hpp): HeadScanner, the request line's version (RFC 9112 2.3: 1.x as 1.1,
// another major version 505), Beast's parser with the proxy's limits, the RFC 9112 checks (400/431/505),
// the upstream head written from the accepted request, and the body (chunked or Content-Length) fed
// through parse_buffered and re-framed with FramedPiece as it goes upstream.
//
// Input: byte 0 picks how the bytes arrive (pieces of 1..64 bytes), the rest is the connection's bytes.
// Invariants: the scanner's verdict does not depend on how the bytes arrived; every refused head has a
// 400, 431 or 505 and a reason; only another major version is refused for its version, and the version
// rewrite touches nothing but a newer HTTP/1.x's minor digit; the version read off the raw request line
// is the one Beast parses; an accepted head stays under the limits, has an origin-form target (or
// OPTIONS), and the head written upstream parses back to the same method, target and Host; the body
// never yields more bytes than were sent, and a chunked body re-framed as chunks parses back to itself.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/string_body.hpp>

#include "proxy/buffered_parse.hpp"
#include "proxy/forward_headers.hpp"
#include "proxy/head_checks.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/reframe.hpp"

using namespace sluice;
using namespace sluice::proxy;

namespace {
// Smaller than the defaults (64 KiB, 100 fields) so that inputs of fuzzing size reach the limits.
constexpr std::size_t kMaxHeadBytes = 2048;
constexpr std::size_t kMaxHeaders = 16;
constexpr std::size_t kBodyBuffer = 512;

void append(beast::flat_buffer& buffer, std::string_view bytes) {
  auto room = buffer.prepare(bytes.size());
  std::copy(bytes.begin(), bytes.end(), static_cast<char*>(room.data()));
  buffer.commit(bytes.size());
}

bool refused_status(http::status s) {
  return s == http::status::bad_request || s == http::status::request_header_fields_too_large ||
         s == http::status::http_version_not_supported;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t stride = 1 + data[0] % 64;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  // The head, as read_head scans it: everything received so far, one piece more each time.
  HeadScanner scanner(kMaxHeadBytes, kMaxHeaders);
  HeadScan scan = HeadScan::need_more;
  std::size_t have = 0;
  while (scan == HeadScan::need_more && have < input.size()) {
    have = std::min(input.size(), have + stride);
    scan = scanner.scan(input.substr(0, have));
  }
  if (scan == HeadScan::need_more) return 0;  // the session would wait (under its deadline) for more
  HeadScanner at_once(kMaxHeadBytes, kMaxHeaders);
  FUZZ_CHECK(at_once.scan(input.substr(0, have)) == scan, "verdict depends on how the bytes arrived");
  if (scan != HeadScan::complete) {
    const auto r = refusal_of(scan);
    FUZZ_CHECK(refused_status(r.status) && !r.reason.empty(), "scanner refusal without status or reason");
    return 0;
  }
  FUZZ_CHECK(scanner.head_size() <= kMaxHeadBytes && scanner.head_size() <= have, "head past the limit");

  // The version, as read_head takes it from the raw request line: HTTP/1.0 for its error answers, 1.x
  // (x > 1) rewritten to 1.1, another major version refused with 505.
  const auto line = input.substr(0, input.find("\r\n"));
  const LineVersion line_version = request_line_version(line);
  beast::flat_buffer buffer;
  append(buffer, input.substr(0, have));
  if (auto r = normalize_request_version(static_cast<char*>(buffer.data().data()), buffer.size())) {
    FUZZ_CHECK(line_version == LineVersion::other_major, "version refused but the line's major version is 1");
    FUZZ_CHECK(r->status == http::status::http_version_not_supported && !r->reason.empty(),
               "version refusal is not a 505 with a reason");
    return 0;
  }
  FUZZ_CHECK(line_version != LineVersion::other_major, "another major version not refused");
  {
    const std::string_view rewritten(static_cast<const char*>(buffer.data().data()), buffer.size());
    FUZZ_CHECK(rewritten.size() == have, "version rewrite changed the head's length");
    const std::size_t diff = std::mismatch(rewritten.begin(), rewritten.end(), input.begin()).first - rewritten.begin();
    FUZZ_CHECK(diff == have || (line_version == LineVersion::newer_minor && diff == line.size() - 1 &&
                                rewritten.substr(diff + 1) == input.substr(diff + 1, have - diff - 1)),
               "version rewrite touched more than the minor digit of a newer HTTP/1.x");
  }
  request_head_parser parser;
  prepare_request_parser(parser, kMaxHeadBytes);
  boost::system::error_code ec;
  buffer.consume(parser.put(buffer.data(), ec));
  if (ec || !parser.is_header_done()) {
    const auto r = refusal_of_parse(ec);
    FUZZ_CHECK(refused_status(r.status) && !r.reason.empty(), "parser refusal without status or reason");
    return 0;
  }
  auto& req = parser.get();
  std::string authority;
  if (auto r = check_request_head(req, authority)) {
    FUZZ_CHECK(refused_status(r->status) && !r->reason.empty(), "check refusal without status or reason");
    return 0;
  }
  FUZZ_CHECK(!req.target().empty() && (req.target()[0] == '/' || req.method() == http::verb::options),
             "accepted target not in origin form");
  FUZZ_CHECK(req.version() == 10 || req.version() == 11, "accepted version");
  // The version read off the raw line (which answers an HTTP/1.0 client's errors) is the parser's.
  FUZZ_CHECK((line_version == LineVersion::v10 && req.version() == 10) ||
                 ((line_version == LineVersion::v11 || line_version == LineVersion::newer_minor) && req.version() == 11),
             "request line's version differs from the parsed one");

  // The head that goes upstream must parse back to the same request.
  const bool chunked = req.chunked();
  std::string head;
  RequestHeadParts parts;
  parts.method = req.method_string();
  parts.target = req.target();
  parts.host = authority;
  parts.client_ip = "192.0.2.1";
  parts.chunked = chunked;
  write_request_head(req, parts, head);
  {
    http::request_parser<http::string_body> again;
    again.header_limit(64 * 1024);
    again.body_limit(boost::none);  // as a proxy's or server's parser would: the head is what is checked here
    boost::system::error_code aec;
    again.put(boost::asio::buffer(head), aec);
    FUZZ_CHECK(!aec && again.is_header_done(), "upstream head does not parse");
    FUZZ_CHECK(again.get().method_string() == req.method_string(), "upstream method differs");
    FUZZ_CHECK(again.get().target() == req.target(), "upstream target differs");
    auto host = again.get().find(http::field::host);
    FUZZ_CHECK(host != again.get().end() && host->value() == authority, "upstream Host differs");
  }

  // The body, as read_body_piece reads it and send_request re-frames it.
  std::string body, framed;
  char piece[kBodyBuffer];
  std::size_t fed = have;
  for (int rounds = 0; !parser.is_done() && rounds < 100000; ++rounds) {
    req.body().data = piece;
    req.body().size = sizeof piece;
    if (!parse_buffered(parser, buffer, ec)) {
      if (fed == input.size()) break;  // the client stopped sending: the session's deadline ends it
      const auto next = input.substr(fed, std::min(stride, input.size() - fed));
      append(buffer, next);
      fed += next.size();
      continue;
    }
    if (ec) return 0;  // "malformed request body": 400 and close
    const std::size_t got = sizeof piece - req.body().size;
    body.append(piece, got);
    sluice_fuzz::append_framed(framed, piece, got, chunked, parser.is_done());
  }
  FUZZ_CHECK(body.size() <= input.size(), "more body than bytes sent");
  if (parser.is_done() && chunked) {
    FUZZ_CHECK(sluice_fuzz::unchunk(framed) == body, "re-framed chunked body does not parse back");
  }
  if (parser.is_done() && !chunked) {
    FUZZ_CHECK(framed == body, "a Content-Length body is relayed as is");
    FUZZ_CHECK(body.size() == parser.content_length().value_or(0), "body length differs from Content-Length");
  }
  return 0;
}
