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
  CHECK(sluice::proxy::h2_request_fields({"GET", "http", "", "/"}, std::vector<H2Field>{}, none).empty());
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

TEST_CASE("h2 upstream request: pseudo-headers first, hop-by-hop out, te: trailers kept, forwarding fields",
          "[proxy][h2]") {
  http::fields in;
  in.insert("Connection", "keep-alive, X-Hop");
  in.insert("X-Hop", "1");
  in.insert("Keep-Alive", "timeout=5");
  in.insert("Transfer-Encoding", "chunked");
  in.insert("TE", "trailers, deflate");
  in.insert("Host", "ignored.example");
  in.insert("Content-Type", "application/grpc");
  in.insert("X-Forwarded-For", "10.0.0.1");
  in.insert("Via", "1.1 edge");
  const auto out = sluice::proxy::h2_upstream_request_fields(in, "POST", "http", "app.example", "/pkg.Svc/M",
                                                             "10.0.0.2", false);
  REQUIRE(out.size() >= 4);
  CHECK(out[0].name == ":method");
  CHECK(out[1].value == "http");
  CHECK(out[2].name == ":authority");
  CHECK(out[2].value == "app.example");
  CHECK(out[3].value == "/pkg.Svc/M");
  auto value = [&](std::string_view name) {
    std::string v;
    for (const auto& f : out) {
      if (f.name == name) v += (v.empty() ? "" : "|") + f.value;
    }
    return v;
  };
  CHECK(value("content-type") == "application/grpc");
  CHECK(value("te") == "trailers");
  CHECK(value("x-forwarded-for") == "10.0.0.1, 10.0.0.2");
  CHECK(value("x-forwarded-proto") == "http");
  CHECK(value("via") == "1.1 edge, 1.1 sluice");
  for (const auto* gone : {"connection", "x-hop", "keep-alive", "transfer-encoding", "host"}) {
    CHECK(value(gone).empty());
  }
  http::fields no_te;
  no_te.insert("TE", "gzip");
  const auto plain = sluice::proxy::h2_upstream_request_fields(no_te, "GET", "https", "a", "/", "1.2.3.4", true);
  for (const auto& f : plain) CHECK(f.name != "te");
}

// HTTP/2 to HTTP/2 builds the upstream header list from the stream's fields directly; it must give what
// the way through Beast's fields gives (h2_request_fields, then h2_upstream_request_fields), repeated names
// kept next to each other (Beast groups them; the direct way keeps arrival order).
TEST_CASE("h2 upstream request fields from the stream's fields match the way through Beast's fields") {
  using sluice::proxy::H2Field;
  const sluice::proxy::H2RequestLine line{"POST", "http", "app.example", "/pkg.Svc/M"};
  const std::vector<std::vector<H2Field>> cases{
      {},
      {{"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", "1S"}, {"user-agent", "x"}},
      {{"host", "ignored.example"}, {"cookie", "a=1"}, {"cookie", "b=2"}, {"x-forwarded-for", "10.0.0.1"},
       {"x-forwarded-for", "10.0.0.3"}, {"via", "1.1 edge"}, {"x-forwarded-proto", "https"},
       {"proxy-authorization", "x"}, {"proxy-foo", "y"}, {"expect", "100-continue"}, {"trailer", "grpc-status"},
       {"accept", "*/*"}, {"accept", "text/html"}, {"te", "deflate"}},
      {{"connection", "x-hop, cookie"}, {"x-hop", "1"}, {"cookie", "c=3"}, {"keep-alive", "5"}, {"upgrade", "h2c"},
       {"transfer-encoding", "chunked"}, {"x-kept", "v"}},
  };
  for (const auto& in : cases) {
    for (const std::string added : {"", "42"}) {
      http::fields beast;
      sluice::proxy::h2_request_fields(line, in, beast);
      if (!added.empty()) beast.set(http::field::content_length, added);
      const auto via_beast = sluice::proxy::h2_upstream_request_fields(beast, line.method, "http", "up.example",
                                                                      "/p", "10.0.0.2", false);
      const auto direct = sluice::proxy::h2_upstream_request_fields(in, added, line.method, "http", "up.example",
                                                                    "/p", "10.0.0.2", false);
      REQUIRE(direct.size() == via_beast.size());
      for (std::size_t i = 0; i < direct.size(); ++i) {
        CHECK(direct[i].name == via_beast[i].name);
        CHECK(direct[i].value == via_beast[i].value);
      }
    }
  }
  CHECK(sluice::proxy::h2_authority(line, {{"host", "h"}}) == "app.example");
  CHECK(sluice::proxy::h2_authority({"GET", "http", "", "/"}, {{"host", "h"}, {"host", "i"}}) == "h");
  CHECK(sluice::proxy::h2_authority({"GET", "http", "", "/"}, std::vector<H2Field>{}).empty());
}

namespace {

// The stream's view of `in`, as on_header fills it.
void fill(sluice::proxy::H2FieldList& list, const std::vector<H2Field>& in) {
  for (const auto& f : in) list.add(f.name, f.value);
}

std::vector<H2Field> of_nva(const sluice::proxy::H2NvList& list) {
  std::vector<H2Field> out;
  for (const auto& nv : list.nva) {
    out.push_back({std::string(reinterpret_cast<const char*>(nv.name), nv.namelen),
                   std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen)});
  }
  return out;
}

void check_same(const std::vector<H2Field>& a, const std::vector<H2Field>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].name == b[i].name);
    CHECK(a[i].value == b[i].value);
  }
}

}  // namespace

TEST_CASE("h2 field list: views stay valid as storage grows, clear() starts over", "[proxy][h2]") {
  sluice::proxy::H2FieldList list;
  std::vector<H2Field> expect;
  // Past the first block and a value larger than any block so far.
  for (int i = 0; i < 200; ++i) expect.push_back({"x-field-" + std::to_string(i), std::string(i * 7 % 50, 'v')});
  expect.push_back({"x-big", std::string(5000, 'b')});
  fill(list, expect);
  REQUIRE(list.size() == expect.size());
  for (std::size_t i = 0; i < expect.size(); ++i) {
    CHECK(list[i].name == expect[i].name);
    CHECK(list[i].value == expect[i].value);
  }
  REQUIRE(sluice::proxy::h2_find(list, "x-field-3") != nullptr);
  CHECK(sluice::proxy::h2_find(list, "x-field-3")->value == expect[3].value);
  CHECK(sluice::proxy::h2_find(list, "x-none") == nullptr);
  list.clear();
  CHECK(list.empty());
  list.add("a", "1");
  CHECK(list[0].name == "a");
  CHECK(list[0].value == "1");
}

// The header lists built for nghttp2 straight from the stream's (or the call's) field list are the lists the
// std::string versions give.
TEST_CASE("h2 nghttp2 lists from field lists match the H2Field lists", "[proxy][h2]") {
  const sluice::proxy::H2RequestLine line{"POST", "http", "app.example", "/pkg.Svc/M"};
  const std::vector<std::vector<H2Field>> cases{
      {},
      {{"content-type", "application/grpc"}, {"te", "trailers"}, {"grpc-timeout", "1S"}, {"user-agent", "x"}},
      {{"host", "ignored.example"}, {"cookie", "a=1"}, {"cookie", "b=2"}, {"x-forwarded-for", "10.0.0.1"},
       {"via", "1.1 edge"}, {"proxy-foo", "y"}, {"expect", "100-continue"}, {"accept", "*/*"}, {"te", "deflate"},
       {"connection", "x-hop"}, {"x-hop", "1"}, {"keep-alive", "5"}, {"transfer-encoding", "chunked"},
       {"x-forwarded-proto", "https"}, {"set-cookie", "s=1"}, {"content-length", "3"}},
  };
  sluice::proxy::H2NvList nv;
  for (const auto& in : cases) {
    sluice::proxy::H2FieldList list;
    fill(list, in);
    for (const std::string added : {"", "42"}) {
      sluice::proxy::h2_upstream_request_nva(list, added, line.method, "http", "up.example", "/p", "10.0.0.2", true,
                                             nv);
      check_same(of_nva(nv), sluice::proxy::h2_upstream_request_fields(in, added, line.method, "http", "up.example",
                                                                       "/p", "10.0.0.2", true));
    }
    for (const std::string cookie : {"", "sluice=abc; Path=/"}) {
      sluice::proxy::h2_response_nva(list, 503, cookie, nv);
      auto copy = in;
      check_same(of_nva(nv), sluice::proxy::h2_response_fields(std::move(copy), 503, cookie));
    }
    http::fields a;
    http::fields b;
    sluice::proxy::h1_fields_of(list, a);
    sluice::proxy::h1_fields_of(in, b);
    CHECK(std::distance(a.begin(), a.end()) == std::distance(b.begin(), b.end()));
    for (auto i = a.begin(), j = b.begin(); i != a.end() && j != b.end(); ++i, ++j) {
      CHECK(i->name_string() == j->name_string());
      CHECK(i->value() == j->value());
    }
  }
}
