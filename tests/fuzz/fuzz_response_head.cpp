// Upstream response path: the bytes an endpoint answers with, arriving in pieces, through what
// read_upstream_response_head and relay_response do with them: Beast's parser with the proxy's limits
// (prepare_response_parser), interim 1xx heads skipped (is_final_response), the downstream head written
// (write_response_head), and the body (Content-Length, chunked, or until close) fed through
// parse_buffered and re-framed with FramedPiece for the client.
//
// Input: byte 0 picks the piece size (1..32 bytes), whether the request was a HEAD and whether the client
// speaks HTTP/1.0; the rest is the endpoint's bytes.
// Invariants: no head past the limit is accepted, and no more of a head than the limit is ever held; the head written downstream parses back with the same
// status; body bytes never exceed the bytes received; a body re-framed as chunks parses back to itself.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>

#include "proxy/buffered_parse.hpp"
#include "proxy/forward_headers.hpp"
#include "proxy/head_checks.hpp"
#include "tests/fuzz/fuzz_check.hpp"
#include "tests/fuzz/reframe.hpp"

using namespace sluice;
using namespace sluice::proxy;

namespace {
constexpr std::size_t kMaxHeadBytes = 2048;  // below the default so that the limit is reached
constexpr std::size_t kBodyBuffer = 512;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t stride = 1 + data[0] % 32;
  const bool head_request = data[0] & 0x40;
  const bool http10_client = data[0] & 0x80;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  beast::flat_buffer buffer;
  std::size_t fed = 0;
  const auto feed = [&]() -> bool {  // one more piece from the "socket"; false at its end
    if (fed == input.size()) return false;
    const auto next = input.substr(fed, std::min(stride, input.size() - fed));
    auto room = buffer.prepare(next.size());
    std::copy(next.begin(), next.end(), static_cast<char*>(room.data()));
    buffer.commit(next.size());
    fed += next.size();
    return true;
  };

  // Heads until a final one, as read_upstream_response_head reads them: a fresh parser (and limit) each.
  std::optional<response_head_parser> parser;
  boost::system::error_code ec;
  for (int heads = 0;; ++heads) {
    if (heads > 1000) return 0;
    parser.emplace();
    prepare_response_parser(*parser, kMaxHeadBytes, head_request);
    std::size_t head_bytes = 0;  // parse_response_head's count
    std::size_t consumed = 0;    // the harness's own: what left the buffer
    for (;;) {
      const std::size_t before = buffer.size();
      const bool settled = parse_response_head(*parser, buffer, kMaxHeadBytes, head_bytes, ec);
      consumed += before - buffer.size();
      FUZZ_CHECK(head_bytes == consumed, "head byte count differs from the bytes consumed");
      if (settled) break;
      // Waiting for more: what is held of this head (parsed and buffered) stays under the limit.
      FUZZ_CHECK(consumed + buffer.size() <= kMaxHeadBytes, "more of a head held than the limit");
      if (!feed()) return 0;  // closed before a whole head: 502
    }
    if (ec) {
      // A malformed head or one past the limit: 502, the endpoint is blamed.
      FUZZ_CHECK(!parser->is_header_done() || ec == http::error::header_limit, "error after a complete head");
      return 0;
    }
    FUZZ_CHECK(parser->is_header_done(), "settled without a head or an error");
    FUZZ_CHECK(consumed <= kMaxHeadBytes, "response head past the limit accepted");
    if (!is_valid_status(parser->get().result_int())) return 0;  // 502, as read_upstream_response_head
    if (is_final_response(parser->get().result_int())) break;
  }
  const auto& res = parser->get();
  const unsigned status = res.result_int();
  FUZZ_CHECK(status >= 100 && status <= 599, "relayed status out of range");

  // The downstream head, as relay_response writes it.
  const bool no_body = head_request || status == 204 || status == 304 || parser->is_done();
  const bool chunked = !no_body && !res.has_content_length() && !http10_client;
  std::string head;
  write_response_head(res, ResponseHeadParts{http10_client ? 10u : 11u, status, res.reason(), {}, chunked, true, {}}, head);
  {
    http::response_parser<http::empty_body> again;
    again.header_limit(64 * 1024);
    again.skip(true);
    boost::system::error_code aec;
    again.put(boost::asio::buffer(head), aec);
    FUZZ_CHECK(!aec && again.is_header_done(), "downstream head does not parse");
    FUZZ_CHECK(again.get().result_int() == status, "downstream status differs");
  }
  if (no_body) return 0;

  std::string body, framed;
  char piece[kBodyBuffer];
  auto& in_body = parser->get().body();
  for (int rounds = 0; !parser->is_done() && rounds < 100000; ++rounds) {
    in_body.data = piece;
    in_body.size = sizeof piece;
    if (!parse_buffered(*parser, buffer, ec)) {
      if (!feed()) {
        parser->put_eof(ec);  // the endpoint closed: the end of a body read until close, else a cut
        if (ec) return 0;
        sluice_fuzz::append_framed(framed, piece, 0, chunked, true);
        break;
      }
      continue;
    }
    if (ec) return 0;  // cut mid-body: the client sees the response cut
    const std::size_t got = sizeof piece - in_body.size;
    body.append(piece, got);
    sluice_fuzz::append_framed(framed, piece, got, chunked, parser->is_done());
  }
  FUZZ_CHECK(body.size() <= input.size(), "more body than bytes received");
  if (parser->is_done()) {
    if (chunked) {
      FUZZ_CHECK(sluice_fuzz::unchunk(framed) == body, "re-framed body does not parse back");
    } else {
      FUZZ_CHECK(framed == body, "an unframed body is relayed as is");
    }
  }
  return 0;
}
