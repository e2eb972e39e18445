// The raw request-head checks in front of Beast's parser (proxy/head_scanner.hpp): framing a proxy must
// refuse (bare LF, obs-fold), the size and count limits, and heads that arrive in pieces.
#include <catch2/catch.hpp>

#include <string>

#include "proxy/head_scanner.hpp"

using namespace sluice::proxy;

namespace {

HeadScan scan_all(std::string_view head, std::size_t max_bytes = 60 * 1024, std::size_t max_headers = 100) {
  HeadScanner s(max_bytes, max_headers);
  return s.scan(head);
}

}  // namespace

TEST_CASE("head scanner: a well-formed head is complete at its blank line", "[proxy]") {
  const std::string head = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
  HeadScanner s(1024, 10);
  CHECK(s.scan(head + "GET /next") == HeadScan::complete);  // a pipelined request after it is not counted
  CHECK(s.head_size() == head.size());
}

TEST_CASE("head scanner: bytes arriving one at a time give the same verdict", "[proxy]") {
  const std::string head = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
  HeadScanner s(1024, 10);
  for (std::size_t n = 1; n < head.size(); ++n) REQUIRE(s.scan(std::string_view(head).substr(0, n)) == HeadScan::need_more);
  CHECK(s.scan(head) == HeadScan::complete);
  CHECK(s.head_size() == head.size());
}

TEST_CASE("head scanner: framing a proxy must refuse", "[proxy]") {
  CHECK(scan_all("GET / HTTP/1.1\nHost: a\r\n\r\n") == HeadScan::bare_lf);
  CHECK(scan_all("GET / HTTP/1.1\r\nHost: a\n\r\n") == HeadScan::bare_lf);
  CHECK(scan_all("GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n") == HeadScan::obs_fold);
  CHECK(scan_all("GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n") == HeadScan::obs_fold);
  CHECK(scan_all("\r\nGET / HTTP/1.1\r\n\r\n") == HeadScan::empty_first_line);
}

TEST_CASE("head scanner: size and header-count limits", "[proxy]") {
  std::string head = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 3; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
  head += "\r\n";
  CHECK(scan_all(head, 1024, 3) == HeadScan::complete);
  CHECK(scan_all(head, 1024, 2) == HeadScan::too_many_headers);
  CHECK(scan_all(head, head.size(), 3) == HeadScan::complete);
  CHECK(scan_all(head, head.size() - 1, 3) == HeadScan::too_large);
  // Without a blank line yet, reaching the limit is enough to refuse.
  CHECK(scan_all(std::string(100, 'a'), 100, 3) == HeadScan::too_large);
  CHECK(scan_all(std::string(99, 'a'), 100, 3) == HeadScan::need_more);
}
