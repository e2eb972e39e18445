// proxy/h2_headers.hpp: HTTP/2 <-> HTTP/1.1 header translation.
#include "proxy/h2_headers.hpp"

#include <catch2/catch.hpp>

#include <boost/beast/http/field.hpp>

namespace http = boost::beast::http;
using sluice::proxy::H2Field;
using sluice::proxy::H2RequestLine;

TEST_CASE("h2 request: :authority becomes Host and wins over a host field", "[proxy][h2]") {
  http::fields out;
  const auto authority = sluice::proxy::h2_request_fields({"GET", "http", "app.example:8080", "/x"},
                                                          {{"host", "other.example"}, {"accept", "*/*"}}, out);
  CHECK(authority == "app.example:8080");
  CHECK(out[http::field::host] == "app.example:8080");
  CHECK(out.count(http::field::host) == 1);
  CHECK(out["accept"] == "*/*");
}

TEST_CASE("h2 request: the host field is the authority when :authority is absent", "[proxy][h2]") {
  http::fields out;
  CHECK(sluice::proxy::h2_request_fields({"GET", "http", "", "/"}, {{"host", "h.example"}}, out) == "h.example");
  CHECK(out[http::field::host] == "h.example");
  http::fields none;
  CHECK(sluice::proxy::h2_request_fields({"GET", "http", "", "/"}, {}, none).empty());
  CHECK(none.find(http::field::host) == none.end());
}

TEST_CASE("h2 request: cookie crumbs are joined with '; ' (RFC 9113 8.2.3), other fields keep their order",
          "[proxy][h2]") {
  http::fields out;
  sluice::proxy::h2_request_fields({"GET", "http", "a", "/"},
                                   {{"cookie", "a=1"}, {"x-one", "1"}, {"cookie", "b=2"}, {"x-one", "2"}}, out);
  CHECK(out[http::field::cookie] == "a=1; b=2");
  CHECK(out.count(http::field::cookie) == 1);
  auto range = out.equal_range("x-one");
  std::vector<std::string> values;
  for (auto it = range.first; it != range.second; ++it) values.emplace_back(it->value());
  CHECK(values == std::vector<std::string>{"1", "2"});
}

TEST_CASE("h2 response: :status first, names lowercased, hop-by-hop dropped, Via appended", "[proxy][h2]") {
  http::fields in;
  in.insert("Content-Type", "text/plain");
  in.insert("Content-Length", "5");
  in.insert("Connection", "keep-alive, X-Private");
  in.insert("X-Private", "secret");
  in.insert("Keep-Alive", "timeout=5");
  in.insert("Transfer-Encoding", "chunked");
  in.insert("Upgrade", "h2c");
  in.insert("Via", "1.1 upstream");
  in.insert("X-Custom", "Yes");
  const auto out = sluice::proxy::h2_response_fields(in, 200, "");
  REQUIRE(!out.empty());
  CHECK(out.front().name == ":status");
  CHECK(out.front().value == "200");
  std::vector<std::string> names;
  for (const auto& f : out) names.push_back(f.name);
  CHECK(names == std::vector<std::string>{":status", "content-type", "content-length", "x-custom", "via"});
  CHECK(out.back().value == "1.1 upstream, 1.1 sluice");
  CHECK(out[3].value == "Yes");
}

TEST_CASE("h2 response: the stickiness cookie is added", "[proxy][h2]") {
  http::fields in;
  const auto out = sluice::proxy::h2_response_fields(in, 404, "sluice=abc; Path=/");
  REQUIRE(out.size() == 3);
  CHECK(out[0].value == "404");
  CHECK(out[1].name == "set-cookie");
  CHECK(out[1].value == "sluice=abc; Path=/");
  CHECK(out[2].name == "via");
  CHECK(out[2].value == "1.1 sluice");
}
