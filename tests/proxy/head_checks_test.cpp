// Head checks shared by the sessions and the fuzzers (proxy/head_checks.hpp): the upstream response head's
// limit over the whole head however it arrives, and the request line's version (RFC 9112 2.3).
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "proxy/head_checks.hpp"

using namespace sluice;
using namespace sluice::proxy;

namespace {

// A 200 head of exactly `size` bytes whose status line's reason phrase is `reason_len` bytes.
std::string response_head(std::size_t size, std::size_t reason_len = 2) {
  std::string head = "HTTP/1.1 200 " + std::string(reason_len, 'r') + "\r\nX-Pad: ";
  const std::string tail = "\r\nContent-Length: 0\r\n\r\n";
  head.append(size - head.size() - tail.size(), 'p');
  return head + tail;
}

// Feeds `bytes` `piece` bytes at a time as read_upstream_response_head does; the error, clear when the
// head was accepted.
boost::system::error_code parse_in_pieces(const std::string& bytes, std::size_t piece, std::size_t limit,
                                          std::size_t* held = nullptr) {
  response_head_parser parser;
  prepare_response_parser(parser, limit, false);
  beast::flat_buffer buffer;
  std::size_t head_bytes = 0, fed = 0;
  boost::system::error_code ec;
  while (!parse_response_head(parser, buffer, limit, head_bytes, ec)) {
    if (held) *held = std::max(*held, head_bytes + buffer.size());
    if (fed == bytes.size()) return http::error::partial_message;
    const auto n = std::min(piece, bytes.size() - fed);
    auto room = buffer.prepare(n);
    std::copy_n(bytes.data() + fed, n, static_cast<char*>(room.data()));
    buffer.commit(n);
    fed += n;
  }
  if (!ec) REQUIRE(parser.is_header_done());
  return ec;
}

}  // namespace

TEST_CASE("response head: the limit holds for the whole head, in one piece or many", "[proxy]") {
  for (std::size_t piece : {1, 7, 100, 600, 4096}) {
    INFO("piece " << piece);
    CHECK(!parse_in_pieces(response_head(1024), piece, 1024));
    CHECK(parse_in_pieces(response_head(1025), piece, 1024) == http::error::header_limit);
    CHECK(parse_in_pieces(response_head(1900), piece, 1024) == http::error::header_limit);
    // A long status line: Beast gives the fields a window of their own after it.
    CHECK(parse_in_pieces(response_head(1500, 500), piece, 1024) == http::error::header_limit);
  }
}

TEST_CASE("response head: no more of a head than the limit is held while waiting for the rest", "[proxy]") {
  std::size_t held = 0;
  CHECK(parse_in_pieces(response_head(5000), 1, 1024, &held) == http::error::header_limit);
  CHECK(held <= 1024);
}

TEST_CASE("response head: two heads in a row each get the limit", "[proxy]") {
  const std::string interim = "HTTP/1.1 103 Early Hints\r\nLink: " + std::string(900, 'l') + "\r\n\r\n";
  const std::string bytes = interim + response_head(1000);
  beast::flat_buffer buffer;
  auto room = buffer.prepare(bytes.size());
  std::copy_n(bytes.data(), bytes.size(), static_cast<char*>(room.data()));
  buffer.commit(bytes.size());
  for (unsigned status : {103u, 200u}) {
    response_head_parser parser;
    prepare_response_parser(parser, 1024, false);
    std::size_t head_bytes = 0;
    boost::system::error_code ec;
    REQUIRE(parse_response_head(parser, buffer, 1024, head_bytes, ec));
    REQUIRE(!ec);
    CHECK(parser.get().result_int() == status);
  }
  CHECK(buffer.size() == 0);
}

TEST_CASE("request line version: 1.0 and 1.1 as they are, 1.x as 1.1, another major 505", "[proxy]") {
  CHECK(request_line_version("GET / HTTP/1.0") == LineVersion::v10);
  CHECK(request_line_version("GET / HTTP/1.1") == LineVersion::v11);
  CHECK(request_line_version("GET / HTTP/1.7") == LineVersion::newer_minor);
  CHECK(request_line_version("GET / HTTP/2.0") == LineVersion::other_major);
  CHECK(request_line_version("GET / HTTP/1.1x") == LineVersion::unknown);
  CHECK(request_line_version("HTTP/1.1") == LineVersion::unknown);

  std::string head = "GET / HTTP/1.7\r\nHost: a\r\n\r\n";
  CHECK(!normalize_request_version(head.data(), head.size()));
  CHECK(head == "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  std::string two = "GET / HTTP/2.0\r\nHost: a\r\n\r\n";
  const auto refusal = normalize_request_version(two.data(), two.size());
  REQUIRE(refusal);
  CHECK(refusal->status == http::status::http_version_not_supported);
  CHECK(refusal->reason == "unsupported HTTP version HTTP/2.0");
  std::string junk = "GET / HTTP/1.1 \r\nHost: a\r\n\r\n";
  const std::string before = junk;
  CHECK(!normalize_request_version(junk.data(), junk.size()));
  CHECK(junk == before);  // Beast's parser says what is wrong with it
}
