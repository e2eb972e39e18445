// The head of a forwarded message, written by hand into one string (RFC 9110 7.6): the request or status
// line, the end-to-end fields of the incoming message, the forwarding fields, and the framing this hop
// chooses. Beast's serializer would do the same field by field through nested buffer views; on the hot
// path one append per field and one write per message is several times cheaper (tests/bench).
//
// Field values come from Beast's parser (no CR or LF can be in them) or from the config.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/fields.hpp>

#include "proxy/head_fields.hpp"

namespace sluice::proxy {

// The functions taking fields come for Beast's default fields and for head_fields (parsed heads,
// proxy/head_fields.hpp), the same code for both.

// Appends the end-to-end fields of `in` to `out` as "Name: value\r\n" lines: drops the hop-by-hop fields
// (Connection and every field it names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*),
// Expect (the proxy answers 100-continue itself), and the fields the caller writes itself: Host,
// X-Forwarded-For, X-Forwarded-Proto and Via (their incoming values lead the lists those heads write).
void append_end_to_end(const boost::beast::http::fields& in, std::string& out);
void append_end_to_end(const head_fields& in, std::string& out);

// Whether append_end_to_end passes `field` of `in` on (the same rule, for callers that write fields in another
// form, e.g. HTTP/2 header lists).
bool is_end_to_end(const boost::beast::http::fields& in, const boost::beast::http::fields::value_type& field);
bool is_end_to_end(const head_fields& in, const head_fields::value_type& field);

// What a request head going upstream carries besides the incoming end-to-end fields.
struct RequestHeadParts {
  std::string_view method;
  std::string_view target;     // origin form, rewritten as the route says
  std::string_view host;       // Host to send
  std::string_view client_ip;  // appended to X-Forwarded-For
  bool tls = false;            // this hop's scheme for X-Forwarded-Proto
  bool chunked = false;        // the body goes as chunks (it came chunked)
  std::string_view upgrade;    // non-empty: an upgrade request (Connection: Upgrade, Upgrade: this)
};

// Replaces `out` with the upstream request head (HTTP/1.1, keep-alive), ending in the blank line. The
// Upgrade and Connection fields, hop-by-hop otherwise, are passed on for an upgrade.
void write_request_head(const boost::beast::http::fields& in, const RequestHeadParts& parts, std::string& out);
void write_request_head(const head_fields& in, const RequestHeadParts& parts, std::string& out);

// What a response head going downstream carries besides the upstream's end-to-end fields.
struct ResponseHeadParts {
  unsigned version = 11;          // the client's HTTP version (10 or 11)
  unsigned status = 200;
  std::string_view reason;        // the upstream's reason phrase; empty: the standard one
  std::string_view set_cookie;    // non-empty: a Set-Cookie field to add (session stickiness)
  bool chunked = false;           // the body goes as chunks (its length is unknown)
  bool keep_alive = true;         // the connection stays open after this response
  std::string_view upgrade;       // non-empty: a 101 switching to this protocol (Connection: Upgrade)
};

// Replaces `out` with the downstream response head, ending in the blank line. Via gets "1.1 sluice".
void write_response_head(const boost::beast::http::fields& in, const ResponseHeadParts& parts, std::string& out);
void write_response_head(const head_fields& in, const ResponseHeadParts& parts, std::string& out);

// The buffers of one write: an optional head, then a piece of body as this hop frames it (as is, or as
// one chunk, followed by the last chunk when the body ends). `last_chunk`: the chunked body's end with its
// trailers ("0\r\n" fields "\r\n"), when there are any; by default "0\r\n\r\n". Holds the chunk-size line,
// so it must outlive the write (and `last_chunk` with it).
class FramedPiece {
 public:
  FramedPiece(std::string_view head, const char* data, std::size_t size, bool chunked, bool last,
              std::string_view last_chunk = {});

  const std::array<boost::asio::const_buffer, 5>& buffers() const { return buffers_; }
  std::size_t body_bytes() const { return body_; }

 private:
  std::array<boost::asio::const_buffer, 5> buffers_;
  char size_line_[24];
  std::size_t body_ = 0;
};

}  // namespace sluice::proxy
