#include "proxy/forward_headers.hpp"

#include <charconv>

#include <boost/range/iterator_range_core.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/status.hpp>

namespace sluice::proxy {
namespace {

namespace http = boost::beast::http;

constexpr std::string_view kVia = "1.1 sluice";
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";

// Fields this hop never forwards, and fields it writes itself.
bool is_dropped(http::field f, std::string_view name) {
  switch (f) {
    case http::field::connection:
    case http::field::keep_alive:
    case http::field::te:
    case http::field::trailer:
    case http::field::transfer_encoding:
    case http::field::upgrade:
    case http::field::proxy_authenticate:
    case http::field::proxy_authorization:
    case http::field::proxy_connection:
    case http::field::expect:
    case http::field::host:
    case http::field::via:
      return true;
    case http::field::unknown:
      break;
    default:
      return false;
  }
  // Beast has no enum for these.
  return (name.size() >= 6 && boost::beast::iequals(name.substr(0, 6), "proxy-")) ||
         boost::beast::iequals(name, "x-forwarded-for") || boost::beast::iequals(name, "x-forwarded-proto");
}

template <class Fields>
bool named_by_connection(const Fields& in, std::string_view name) {
  for (const auto& connection : boost::make_iterator_range(in.equal_range(http::field::connection))) {
    for (auto token : http::token_list{connection.value()}) {
      if (boost::beast::iequals(token, name)) return true;
    }
  }
  return false;
}

void append_field(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(": ").append(value).append(kCrlf);
}

// "Name: incoming values, ours\r\n": every value of field `incoming` in `in` in the order they came (equal_range
// walks them so), then ours, written straight into `out` (no list is built apart).
template <class Fields>
void append_list_field(std::string& out, std::string_view name, const Fields& in, std::string_view incoming,
                       std::string_view ours) {
  out.append(name).append(": ");
  for (const auto& field : boost::make_iterator_range(in.equal_range(incoming))) {
    out.append(field.value()).append(", ");
  }
  out.append(ours).append(kCrlf);
}

// Which of the fields a head is written around are present, found in one walk of the (few) fields with
// enum compares: cheaper than a lookup each in Beast's case-insensitive name index, and most heads have
// none of them, so their lookups are then skipped.
struct Present {
  bool connection = false;
  bool via = false;
  bool x_forwarded_for = false;
};

template <class Fields>
Present present_in(const Fields& in) {
  Present p;
  for (const auto& field : in) {
    switch (field.name()) {
      case http::field::connection:
        p.connection = true;
        break;
      case http::field::via:
        p.via = true;
        break;
      case http::field::unknown:
        if (boost::beast::iequals(field.name_string(), "x-forwarded-for")) p.x_forwarded_for = true;
        break;
      default:
        break;
    }
  }
  return p;
}

// append_list_field when the incoming field may be absent (`present` false: only ours).
template <class Fields>
void append_list_field_if(bool present, std::string& out, std::string_view name, const Fields& in,
                          std::string_view incoming, std::string_view ours) {
  if (present) return append_list_field(out, name, in, incoming, ours);
  out.append(name).append(": ").append(ours).append(kCrlf);
}

template <class Fields>
void append_end_to_end_with(const Fields& in, bool has_connection, std::string& out) {
  for (const auto& field : in) {
    const std::string_view name = field.name_string();
    if (is_dropped(field.name(), name)) continue;
    if (has_connection && named_by_connection(in, name)) continue;
    append_field(out, name, field.value());
  }
}

}  // namespace

template <class Fields>
void append_end_to_end_t(const Fields& in, std::string& out) {
  append_end_to_end_with(in, in.find(http::field::connection) != in.end(), out);
}

template <class Fields>
bool is_end_to_end_t(const Fields& in, const typename Fields::value_type& field) {
  const std::string_view name = field.name_string();
  if (is_dropped(field.name(), name)) return false;
  return in.find(http::field::connection) == in.end() || !named_by_connection(in, name);
}

template <class Fields>
void write_request_head_t(const Fields& in, const RequestHeadParts& parts, std::string& out) {
  out.clear();
  out.append(parts.method).append(" ").append(parts.target).append(" HTTP/1.1\r\n");
  append_field(out, "Host", parts.host);
  const Present present = present_in(in);
  append_end_to_end_with(in, present.connection, out);
  if (parts.chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (!parts.upgrade.empty()) {
    out.append("Connection: Upgrade\r\n");
    append_field(out, "Upgrade", parts.upgrade);
  }
  append_list_field_if(present.x_forwarded_for, out, "X-Forwarded-For", in, "x-forwarded-for", parts.client_ip);
  append_field(out, "X-Forwarded-Proto", parts.tls ? "https" : "http");
  append_list_field_if(present.via, out, "Via", in, "via", kVia);
  out.append(kCrlf);
}

template <class Fields>
void write_response_head_t(const Fields& in, const ResponseHeadParts& parts, std::string& out) {
  out.clear();
  out.append(parts.version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  char status[8];
  const auto [end, ec] = std::to_chars(status, status + sizeof status, parts.status);
  (void)ec;  // three digits always fit
  out.append(status, end).append(" ");
  if (parts.reason.empty()) {
    out.append(http::obsolete_reason(static_cast<http::status>(parts.status)));
  } else {
    out.append(parts.reason);
  }
  out.append(kCrlf);
  const Present present = present_in(in);
  append_end_to_end_with(in, present.connection, out);
  if (!parts.set_cookie.empty()) append_field(out, "Set-Cookie", parts.set_cookie);
  if (parts.chunked) out.append("Transfer-Encoding: chunked\r\n");
  if (!parts.upgrade.empty()) {
    // The connection becomes the upgraded protocol's: neither keep-alive nor close applies.
    out.append("Connection: Upgrade\r\n");
    append_field(out, "Upgrade", parts.upgrade);
  } else if (parts.version == 10 && parts.keep_alive) {
    // HTTP/1.1 is persistent unless told otherwise, HTTP/1.0 the other way round (RFC 9112 9.3).
    out.append("Connection: keep-alive\r\n");
  } else if (parts.version != 10 && !parts.keep_alive) {
    out.append("Connection: close\r\n");
  }
  append_list_field_if(present.via, out, "Via", in, "via", kVia);
  out.append(kCrlf);
}

FramedPiece::FramedPiece(std::string_view head, const char* data, std::size_t size, bool chunked, bool last,
                         std::string_view last_chunk)
    : body_(size) {
  std::size_t n = 0;
  if (!head.empty()) buffers_[n++] = boost::asio::buffer(head.data(), head.size());
  if (!chunked) {
    if (size != 0) buffers_[n++] = boost::asio::buffer(data, size);
    return;
  }
  // An empty piece must not become a zero-size chunk: the peer would read it as the end of the body.
  if (size != 0) {
    auto [end, ec] = std::to_chars(size_line_, size_line_ + sizeof size_line_ - 2, size, 16);
    (void)ec;  // a size_t in hex fits in 16 characters
    *end++ = '\r';
    *end++ = '\n';
    buffers_[n++] = boost::asio::buffer(size_line_, static_cast<std::size_t>(end - size_line_));
    buffers_[n++] = boost::asio::buffer(data, size);
    buffers_[n++] = boost::asio::buffer(kCrlf.data(), kCrlf.size());
  }
  if (last_chunk.empty()) last_chunk = kLastChunk;
  if (last) buffers_[n++] = boost::asio::buffer(last_chunk.data(), last_chunk.size());
}

// The two kinds of fields the proxy writes heads from (forward_headers.hpp).
#define SLUICE_FORWARD_HEADERS_FOR(Fields)                                                                 \
  void append_end_to_end(const Fields& in, std::string& out) { append_end_to_end_t(in, out); }           \
  bool is_end_to_end(const Fields& in, const Fields::value_type& field) { return is_end_to_end_t(in, field); } \
  void write_request_head(const Fields& in, const RequestHeadParts& parts, std::string& out) {             \
    write_request_head_t(in, parts, out);                                                                 \
  }                                                                                                        \
  void write_response_head(const Fields& in, const ResponseHeadParts& parts, std::string& out) {           \
    write_response_head_t(in, parts, out);                                                                \
  }
SLUICE_FORWARD_HEADERS_FOR(http::fields)
SLUICE_FORWARD_HEADERS_FOR(head_fields)
#undef SLUICE_FORWARD_HEADERS_FOR

}  // namespace sluice::proxy
