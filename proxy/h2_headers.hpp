// Header translation between a downstream HTTP/2 stream and the HTTP/1.1 messages the proxy exchanges with
// endpoints (RFC 9113 8.2-8.3): pseudo-headers <-> request line and Host, cookie crumbs joined, hop-by-hop
// fields dropped, names lowercased on the way back. Pure functions, any thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/fields.hpp>

#include <nghttp2/nghttp2.h>

#include "proxy/head_fields.hpp"
#include "proxy/recycler.hpp"

namespace sluice::proxy {

// One HTTP/2 header field as received or to send (name lowercase).
struct H2Field {
  std::string name;
  std::string value;
};

// One received field as views into the H2FieldList that holds it. `static_name`: the name is an entry of
// nghttp2's HPACK static table (nghttp2_rcbuf_is_static), in static storage, not a copy.
struct H2FieldView {
  std::string_view name;
  std::string_view value;
  bool static_name = false;
};

// The regular fields of a head as received from nghttp2's callbacks (a downstream request's, an HTTP/2
// endpoint's response's): each name and value copied once into storage the list owns, seen as views, instead
// of two std::strings per field (their constructions, moves and allocations were a tenth of sluice's own
// instructions per proxied HTTP/2 request). The views stay valid until clear() or the list's end.
class H2FieldList {
 public:
  H2FieldList() = default;
  ~H2FieldList();
  H2FieldList(const H2FieldList&) = delete;
  H2FieldList& operator=(const H2FieldList&) = delete;

  // Copies both (name and value side by side in the newest block).
  void add(std::string_view name, std::string_view value) {
    char* at = take(name.size() + value.size());
    if (!name.empty()) std::memcpy(at, name.data(), name.size());
    if (!value.empty()) std::memcpy(at + name.size(), value.data(), value.size());
    fields_.push_back({{at, name.size()}, {at + name.size(), value.size()}});
  }
  // Copies the value only: `name` has static storage (an entry of nghttp2's HPACK static table).
  void add_static_name(std::string_view name, std::string_view value) {
    char* at = take(value.size());
    if (!value.empty()) std::memcpy(at, value.data(), value.size());
    fields_.push_back({name, {at, value.size()}, true});
  }
  void clear();  // keeps the first block of storage
  void reserve(std::size_t n) { fields_.reserve(n); }
  std::size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }
  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }
  const H2FieldView& operator[](std::size_t i) const { return fields_[i]; }

 private:
  struct Block {
    Block* next;
    std::size_t size;  // bytes of data
    std::size_t used;
    char* data() { return reinterpret_cast<char*>(this + 1); }
  };
  void grow(std::size_t need);  // a new newest block with room for `need` bytes
  // `need` bytes of storage for a field, from the newest block (a new one when it has no room).
  char* take(std::size_t need) {
    if (!blocks_ || blocks_->size - blocks_->used < need) grow(need);
    char* at = blocks_->data() + blocks_->used;
    blocks_->used += need;
    return at;
  }

  std::vector<H2FieldView, RecyclingAllocator<H2FieldView>> fields_;
  Block* blocks_ = nullptr;  // newest first
};

// A lowercase header name with static storage: nghttp2 points at it rather than copying and downcasing it
// (NGHTTP2_NV_FLAG_NO_COPY_NAME). Either a literal, the names sluice adds itself, or a received name that
// is an entry of nghttp2's HPACK static table (H2FieldView::static_name). Other received names are copied
// as before: their storage ends with the stream, and nghttp2 packs the frame at its next send.
struct StaticName {
  std::string_view text;
  template <std::size_t N>
  explicit consteval StaticName(const char (&s)[N]) : text(s, N - 1) {}
  static StaticName of_hpack_table(std::string_view name) { return StaticName(name); }
  operator std::string_view() const { return text; }

 private:
  explicit StaticName(std::string_view name) : text(name) {}
};

// A header list being built for nghttp2 (nghttp2_submit_* copy it, StaticName names aside): views of the
// fields it names, and the values made for it (their views point into these strings, each complete before
// its view is taken). Reused from request to request, so its vectors and strings keep their capacity.
struct H2NvList {
  std::vector<nghttp2_nv> nva;
  std::string status;
  std::string cookie;
  std::string xff;
  std::string via;

  void clear() {
    nva.clear();
    status.clear();
    cookie.clear();
    xff.clear();
    via.clear();
  }
  void add(std::string_view name, std::string_view value) { push(name, value, NGHTTP2_NV_FLAG_NONE); }
  void add(StaticName name, std::string_view value) { push(name.text, value, NGHTTP2_NV_FLAG_NO_COPY_NAME); }

 private:
  void push(std::string_view name, std::string_view value, std::uint8_t flags) {
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(), flags});
  }
};

// The bytes of a name or value nghttp2 hands a header callback (on_header_callback2).
inline std::string_view h2_view(nghttp2_rcbuf* buf) {
  const auto vec = nghttp2_rcbuf_get_buf(buf);
  return {reinterpret_cast<const char*>(vec.base), vec.len};
}

// Adds a received field to `fields`: a name from nghttp2's static table is kept as a view of it, others copied.
inline void h2_add_received(H2FieldList& fields, nghttp2_rcbuf* name, std::string_view n, std::string_view v) {
  if (nghttp2_rcbuf_is_static(name)) fields.add_static_name(n, v);
  else fields.add(n, v);
}

// A request's pseudo-headers (empty when absent).
struct H2RequestLine {
  std::string method;
  std::string scheme;
  std::string authority;
  std::string path;
};

// The HTTP/1.1 fields of a request that came as HTTP/2: every regular field in order, the `cookie` crumbs
// joined into one field with "; " (RFC 9113 8.2.3), `host` dropped when :authority is present (which wins,
// RFC 9113 8.3.1), and Host set to the authority (or the host field when :authority is absent).
// Returns the authority the request is routed by (empty when it has neither).
std::string h2_request_fields(const H2RequestLine& line, const std::vector<H2Field>& fields,
                              boost::beast::http::fields& out);

// The HTTP/2 header list of a response the endpoint sent as HTTP/1.1: ":status", then the end-to-end fields
// (forward_headers.hpp's rule: hop-by-hop fields and the ones Connection names dropped) with lowercase
// names, `set_cookie` when not empty, and Via with "1.1 sluice" appended.
std::vector<H2Field> h2_response_fields(const boost::beast::http::fields& in, unsigned status,
                                        std::string_view set_cookie);

// The HTTP/2 header list of a request going to an endpoint over HTTP/2 (proxy/h2_upstream.hpp): the
// pseudo-headers (":authority" is the Host this hop sends), then the end-to-end fields of `in` with
// lowercase names (forward_headers.hpp's rule), `te: trailers` when the request carried it (the one TE
// value HTTP/2 allows, which gRPC requires), X-Forwarded-For / X-Forwarded-Proto and Via as on HTTP/1.1.
// For Beast's default fields (HTTP/2 downstream) and head_fields (HTTP/1.1 downstream).
// `head_count`: only the first that many fields of `in` are the head (the rest are a chunked body's trailers).
std::vector<H2Field> h2_upstream_request_fields(const boost::beast::http::fields& in, std::string_view method,
                                                std::string_view scheme, std::string_view authority,
                                                std::string_view path, std::string_view client_ip, bool client_tls,
                                                std::size_t head_count = static_cast<std::size_t>(-1));
std::vector<H2Field> h2_upstream_request_fields(const head_fields& in, std::string_view method,
                                                std::string_view scheme, std::string_view authority,
                                                std::string_view path, std::string_view client_ip, bool client_tls,
                                                std::size_t head_count = static_cast<std::size_t>(-1));

std::string h2_request_fields(const H2RequestLine& line, const H2FieldList& fields, boost::beast::http::fields& out);

// The authority a request that came as HTTP/2 is routed by: :authority, else the first `host` field (the
// value h2_request_fields returns, without building the fields).
std::string_view h2_authority(const H2RequestLine& line, const std::vector<H2Field>& fields);
// The first field named `name` (lowercase, as HTTP/2 names are), or null.
const H2Field* h2_find(const std::vector<H2Field>& fields, std::string_view name);
std::string_view h2_authority(const H2RequestLine& line, const H2FieldList& fields);
const H2FieldView* h2_find(const H2FieldList& fields, std::string_view name);

// HTTP/2 to HTTP/2: the header list h2_upstream_request_fields gives for h2_request_fields(line, `in`),
// built from the stream's own fields without Beast's in between (names are lowercase already, as nghttp2
// checked). `content_length`, when not empty, is the Content-Length sluice adds (a whole body that came
// without one), after the fields as Beast's set() would put it. One difference, of no meaning in HTTP: a
// name repeated with other names between keeps the order it came in (Beast's fields group such repeats).
std::vector<H2Field> h2_upstream_request_fields(const std::vector<H2Field>& in, std::string_view content_length,
                                                std::string_view method, std::string_view scheme,
                                                std::string_view authority, std::string_view path,
                                                std::string_view client_ip, bool client_tls);

// The same list as nghttp2 header entries in `out` (cleared first), pointing into `in`, the string_views
// given and `out`'s own strings: no field copied. Valid until `out` or any of those change.
void h2_upstream_request_nva(const H2FieldList& in, std::string_view content_length, std::string_view method,
                             std::string_view scheme, std::string_view authority, std::string_view path,
                             std::string_view client_ip, bool client_tls, H2NvList& out);

// The fields of a response (or trailers) that came as HTTP/2, for an HTTP/1.1 head: every regular field,
// pseudo-headers left out.
void h1_fields_of(const std::vector<H2Field>& in, boost::beast::http::fields& out);
void h1_fields_of(const H2FieldList& in, boost::beast::http::fields& out);

// The HTTP/2 header list of a response that came from an HTTP/2 endpoint (`in`: its regular fields, which
// are moved from): ":status", the fields h2_response_fields would keep (an HTTP/2 endpoint sends no
// Connection, so only the named hop-by-hop and proxy-* fields are dropped), `set_cookie`, Via. The same list
// as h2_response_fields gives for `in` seen as HTTP/1.1 fields, without building those.
std::vector<H2Field> h2_response_fields(std::vector<H2Field>&& in, unsigned status, std::string_view set_cookie);
// The same list as nghttp2 header entries in `out` (cleared first), pointing into `in`, `set_cookie` and
// `out`'s own strings.
void h2_response_nva(const H2FieldList& in, unsigned status, std::string_view set_cookie, H2NvList& out);

// Trailer fields as they go on (either way, HTTP/2 or HTTP/1.1 chunked): pseudo-headers and the fields a
// trailer must not carry (RFC 9110 6.5.1: framing, routing, connection-specific ones) dropped.
std::vector<H2Field> trailer_fields(const std::vector<H2Field>& in);

// The HTTP/1.1 last chunk carrying `trailers` (lowercase names, as received): "0\r\n", a line per field,
// the blank line (RFC 9112 7.1.2).
std::string h1_last_chunk(const std::vector<H2Field>& trailers);

// The trailer fields of an HTTP/1.1 chunked message parsed whole: Beast appends them to the head's fields,
// so they are the fields after the first `head_count`. Names lowercase, filtered as trailer_fields.
std::vector<H2Field> h1_trailers_of(const boost::beast::http::fields& in, std::size_t head_count);

}  // namespace sluice::proxy
