// The hand-written heads of forwarded messages (proxy/forward_headers.hpp): what is dropped, what is
// added, the framing, and the bytes a body piece becomes on the wire.
#include <catch2/catch.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/fields.hpp>

#include "proxy/forward_headers.hpp"

namespace http = boost::beast::http;
using namespace sluice::proxy;

namespace {

std::string wire(const FramedPiece& piece) {
  std::string out;
  for (const auto& b : piece.buffers()) out.append(static_cast<const char*>(b.data()), b.size());
  return out;
}

}  // namespace

TEST_CASE("request head: end-to-end fields kept, hop-by-hop dropped, forwarding fields added", "[proxy]") {
  http::fields in;
  in.insert("Host", "shop.example");
  in.insert("Accept", "*/*");
  in.insert(http::field::connection, "keep-alive, X-Secret");
  in.insert("X-Secret", "drop me");
  in.insert("Keep-Alive", "timeout=5");
  in.insert("TE", "trailers");
  in.insert("Transfer-Encoding", "chunked");
  in.insert("Proxy-Authorization", "Basic x");
  in.insert("Expect", "100-continue");
  in.insert("X-Forwarded-For", "203.0.113.7");
  in.insert("X-Forwarded-For", "198.51.100.2");
  in.insert("X-Forwarded-Proto", "https");
  in.insert("Via", "1.0 edge");
  in.insert("Content-Length", "5");

  std::string head;
  write_request_head(in, RequestHeadParts{"POST", "/cart?id=1", "shop.internal", "10.0.0.9", false, false}, head);
  CHECK(head ==
        "POST /cart?id=1 HTTP/1.1\r\n"
        "Host: shop.internal\r\n"
        "Accept: */*\r\n"
        "Content-Length: 5\r\n"
        "X-Forwarded-For: 203.0.113.7, 198.51.100.2, 10.0.0.9\r\n"
        "X-Forwarded-Proto: http\r\n"
        "Via: 1.0 edge, 1.1 sluice\r\n"
        "\r\n");
}

TEST_CASE("request head: a chunked body stays chunked; TLS shows in X-Forwarded-Proto", "[proxy]") {
  http::fields in;
  in.insert("Host", "a");
  in.insert("Transfer-Encoding", "chunked");
  std::string head;
  write_request_head(in, RequestHeadParts{"PUT", "/x", "a", "127.0.0.1", true, true}, head);
  CHECK(head ==
        "PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 127.0.0.1\r\n"
        "X-Forwarded-Proto: https\r\nVia: 1.1 sluice\r\n\r\n");
}

TEST_CASE("response head: status line, connection handling by version, sticky cookie", "[proxy]") {
  http::fields in;
  in.insert("Content-Type", "text/plain");
  in.insert("Connection", "close");
  in.insert("Upgrade", "h2c");

  std::string head;
  write_response_head(in, ResponseHeadParts{11, 200, "OK", "", true, true}, head);
  CHECK(head == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nVia: 1.1 sluice\r\n\r\n");

  write_response_head(in, ResponseHeadParts{11, 503, "", "sid=abc; Path=/", false, false}, head);
  CHECK(head ==
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nSet-Cookie: sid=abc; Path=/\r\n"
        "Connection: close\r\nVia: 1.1 sluice\r\n\r\n");

  write_response_head(in, ResponseHeadParts{10, 204, "No Content", "", false, true}, head);
  CHECK(head == "HTTP/1.0 204 No Content\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nVia: 1.1 sluice\r\n\r\n");
}

TEST_CASE("framed pieces: raw, chunked, never an empty chunk before the end", "[proxy]") {
  const char data[] = "hello world";
  CHECK(wire(FramedPiece("HEAD\r\n\r\n", data, 5, false, true)) == "HEAD\r\n\r\nhello");
  CHECK(wire(FramedPiece({}, data, 11, true, false)) == "b\r\nhello world\r\n");
  CHECK(wire(FramedPiece({}, data, 11, true, true)) == "b\r\nhello world\r\n0\r\n\r\n");
  CHECK(wire(FramedPiece("H\r\n\r\n", data, 0, true, false)) == "H\r\n\r\n");  // nothing that ends the body
  CHECK(wire(FramedPiece({}, data, 0, true, true)) == "0\r\n\r\n");
  CHECK(FramedPiece({}, data, 11, true, true).body_bytes() == 11);
  CHECK(wire(FramedPiece({}, data, 5, true, true, "0\r\nx-sum: 1\r\n\r\n")) == "5\r\nhello\r\n0\r\nx-sum: 1\r\n\r\n");
  CHECK(wire(FramedPiece({}, data, 5, true, false, "0\r\nx-sum: 1\r\n\r\n")) == "5\r\nhello\r\n");
}
