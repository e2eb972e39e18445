#include "proxy/h2_headers.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/range/iterator_range_core.hpp>

#include "proxy/forward_headers.hpp"

namespace sluice::proxy {
namespace {

namespace http = boost::beast::http;

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Via, after what earlier hops put there (`via`, comma-separated; may be empty).
void append_via(std::vector<H2Field>& out, std::string via) {
  if (!via.empty()) via.append(", ");
  via.append("1.1 sluice");
  out.push_back({"via", std::move(via)});
}

// What this hop adds to a request it forwards over HTTP/2: te: trailers when the client asked for trailers,
// X-Forwarded-For (`xff`: earlier hops' list, may be empty) and -Proto, and Via.
void append_forwarding_fields(std::vector<H2Field>& out, bool te_trailers, std::string xff, std::string_view client_ip,
                              bool client_tls, std::string via) {
  if (te_trailers) out.push_back({"te", "trailers"});
  if (!xff.empty()) xff.append(", ");
  xff.append(client_ip);
  out.push_back({"x-forwarded-for", std::move(xff)});
  out.push_back({"x-forwarded-proto", client_tls ? "https" : "http"});
  append_via(out, std::move(via));
}

}  // namespace

namespace {

template <class Fields>
std::string request_fields(const H2RequestLine& line, const Fields& fields, http::fields& out) {
  std::string authority = line.authority;
  std::string cookie;
  for (const auto& f : fields) {
    if (f.name == "host") {
      if (authority.empty()) authority = f.value;
      continue;
    }
    if (f.name == "cookie") {
      if (!cookie.empty()) cookie.append("; ");
      cookie.append(f.value);
      continue;
    }
    out.insert(f.name, f.value);
  }
  if (!cookie.empty()) out.set(http::field::cookie, cookie);
  if (!authority.empty()) out.set(http::field::host, authority);
  return authority;
}

}  // namespace

std::string h2_request_fields(const H2RequestLine& line, const std::vector<H2Field>& fields, http::fields& out) {
  return request_fields(line, fields, out);
}

std::string h2_request_fields(const H2RequestLine& line, const H2FieldList& fields, http::fields& out) {
  return request_fields(line, fields, out);
}

std::vector<H2Field> h2_response_fields(const http::fields& in, unsigned status, std::string_view set_cookie) {
  std::vector<H2Field> out;
  out.push_back({":status", std::to_string(status)});
  std::string via;
  for (const auto& field : in) {
    if (field.name() == http::field::via) {
      if (!via.empty()) via.append(", ");
      via.append(field.value());
      continue;
    }
    if (!is_end_to_end(in, field)) continue;
    out.push_back({lowercase(field.name_string()), std::string(field.value())});
  }
  if (!set_cookie.empty()) out.push_back({"set-cookie", std::string(set_cookie)});
  append_via(out, std::move(via));
  return out;
}

namespace {

template <class Fields>
std::vector<H2Field> upstream_request_fields(const Fields& in, std::string_view method,
                                                std::string_view scheme, std::string_view authority,
                                                std::string_view path, std::string_view client_ip, bool client_tls,
                                                std::size_t head_count) {
  std::vector<H2Field> out;
  out.push_back({":method", std::string(method)});
  out.push_back({":scheme", std::string(scheme)});
  out.push_back({":authority", std::string(authority)});
  out.push_back({":path", std::string(path)});
  std::string xff;
  std::string via;
  bool te_trailers = false;
  std::size_t index = 0;
  for (const auto& field : in) {
    if (index++ == head_count) break;
    const auto name = field.name();
    if (name == http::field::te) {
      // RFC 9113 8.2.2: TE may be sent, with "trailers" only.
      for (auto token : http::token_list{field.value()}) {
        if (boost::beast::iequals(token, "trailers")) te_trailers = true;
      }
      continue;
    }
    if (name == http::field::via) {
      if (!via.empty()) via.append(", ");
      via.append(field.value());
      continue;
    }
    if (boost::beast::iequals(field.name_string(), "x-forwarded-for")) {
      if (!xff.empty()) xff.append(", ");
      xff.append(field.value());
      continue;
    }
    if (!is_end_to_end(in, field)) continue;
    out.push_back({lowercase(field.name_string()), std::string(field.value())});
  }
  append_forwarding_fields(out, te_trailers, std::move(xff), client_ip, client_tls, std::move(via));
  return out;
}

}  // namespace

std::vector<H2Field> h2_upstream_request_fields(const http::fields& in, std::string_view method,
                                                std::string_view scheme, std::string_view authority,
                                                std::string_view path, std::string_view client_ip, bool client_tls,
                                                std::size_t head_count) {
  return upstream_request_fields(in, method, scheme, authority, path, client_ip, client_tls, head_count);
}

std::vector<H2Field> h2_upstream_request_fields(const head_fields& in, std::string_view method,
                                                std::string_view scheme, std::string_view authority,
                                                std::string_view path, std::string_view client_ip, bool client_tls,
                                                std::size_t head_count) {
  return upstream_request_fields(in, method, scheme, authority, path, client_ip, client_tls, head_count);
}

namespace {

template <class Fields>
auto find_field(const Fields& fields, std::string_view name) -> decltype(&*fields.begin()) {
  for (const auto& f : fields) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

template <class Fields>
std::string_view authority_of(const H2RequestLine& line, const Fields& fields) {
  if (!line.authority.empty()) return line.authority;
  const auto* host = find_field(fields, "host");
  return host ? std::string_view(host->value) : std::string_view{};
}

}  // namespace

std::string_view h2_authority(const H2RequestLine& line, const std::vector<H2Field>& fields) {
  return authority_of(line, fields);
}

std::string_view h2_authority(const H2RequestLine& line, const H2FieldList& fields) {
  return authority_of(line, fields);
}

const H2Field* h2_find(const std::vector<H2Field>& fields, std::string_view name) { return find_field(fields, name); }

const H2FieldView* h2_find(const H2FieldList& fields, std::string_view name) { return find_field(fields, name); }

namespace {

// A received field passed on: its name as a StaticName when it is one of nghttp2's static table (H2FieldList
// knows), so that nghttp2 need not copy it again.
template <class Add, class Field>
void add_forwarded(Add& add, const Field& f) {
  if constexpr (requires { f.static_name; }) {
    if (f.static_name) return add(StaticName::of_hpack_table(f.name), f.value);
  }
  add(std::string_view(f.name), f.value);
}

// The HTTP/2 -> HTTP/2 request list, entry by entry through `add(name, value)`. `cookie`, `xff` and `via`
// (empty) are where the joined values are made; each is complete before its entry is added.
template <class Fields, class Add>
void upstream_request_list(const Fields& in, std::string_view content_length, std::string_view method,
                           std::string_view scheme, std::string_view authority, std::string_view path,
                           std::string_view client_ip, bool client_tls, std::string& cookie, std::string& xff,
                           std::string& via, Add&& add) {
  // forward_headers.cpp's is_dropped (te, via and x-forwarded-for are taken apart below; host goes, as
  // :authority carries it; cookie crumbs are joined, as h2_request_fields does).
  static constexpr std::string_view kDropped[] = {"connection", "keep-alive", "trailer", "transfer-encoding",
                                                  "upgrade", "expect", "host", "x-forwarded-proto"};
  add(StaticName(":method"), method);
  add(StaticName(":scheme"), scheme);
  add(StaticName(":authority"), authority);
  add(StaticName(":path"), path);
  // A Connection field names more hop-by-hop fields (nghttp2 refuses one in a request; kept for the rule's
  // sake, as the HTTP/1.1 path has it).
  const bool has_connection = find_field(in, "connection") != nullptr;
  const auto named_by_connection = [&](std::string_view name) {
    if (!has_connection) return false;
    for (const auto& c : in) {
      if (c.name != "connection") continue;
      for (auto token : http::token_list{c.value}) {
        if (boost::beast::iequals(token, name)) return true;
      }
    }
    return false;
  };
  bool te_trailers = false;
  for (const auto& f : in) {
    const std::string_view name = f.name;
    if (name.empty() || name[0] == ':') continue;
    if (name == "cookie") {
      if (!cookie.empty()) cookie.append("; ");
      cookie.append(f.value);
      continue;
    }
    if (name == "te") {
      // RFC 9113 8.2.2: TE may be sent, with "trailers" only.
      for (auto token : http::token_list{f.value}) {
        if (boost::beast::iequals(token, "trailers")) te_trailers = true;
      }
      continue;
    }
    if (name == "via") {
      if (!via.empty()) via.append(", ");
      via.append(f.value);
      continue;
    }
    if (name == "x-forwarded-for") {
      if (!xff.empty()) xff.append(", ");
      xff.append(f.value);
      continue;
    }
    if (name.starts_with("proxy-") || std::find(std::begin(kDropped), std::end(kDropped), name) != std::end(kDropped) ||
        named_by_connection(name)) {
      continue;
    }
    add_forwarded(add, f);
  }
  if (!cookie.empty() && !named_by_connection("cookie")) add(StaticName("cookie"), cookie);
  if (!content_length.empty() && !find_field(in, "content-length") && !named_by_connection("content-length")) {
    add(StaticName("content-length"), content_length);
  }
  // append_forwarding_fields' list.
  if (te_trailers) add(StaticName("te"), "trailers");
  if (!xff.empty()) xff.append(", ");
  xff.append(client_ip);
  add(StaticName("x-forwarded-for"), xff);
  add(StaticName("x-forwarded-proto"), client_tls ? "https" : "http");
  if (!via.empty()) via.append(", ");
  via.append("1.1 sluice");
  add(StaticName("via"), via);
}

}  // namespace

std::vector<H2Field> h2_upstream_request_fields(const std::vector<H2Field>& in, std::string_view content_length,
                                                std::string_view method, std::string_view scheme,
                                                std::string_view authority, std::string_view path,
                                                std::string_view client_ip, bool client_tls) {
  std::vector<H2Field> out;
  out.reserve(in.size() + 8);
  std::string cookie, xff, via;
  upstream_request_list(in, content_length, method, scheme, authority, path, client_ip, client_tls, cookie, xff, via,
                        [&](auto n, std::string_view v) {
                          out.push_back({std::string(std::string_view(n)), std::string(v)});
                        });
  return out;
}

void h2_upstream_request_nva(const H2FieldList& in, std::string_view content_length, std::string_view method,
                             std::string_view scheme, std::string_view authority, std::string_view path,
                             std::string_view client_ip, bool client_tls, H2NvList& out) {
  out.clear();
  upstream_request_list(in, content_length, method, scheme, authority, path, client_ip, client_tls, out.cookie,
                        out.xff, out.via, [&](auto n, std::string_view v) { out.add(n, v); });
}

namespace {

// The response list of an HTTP/2 endpoint's head, entry by entry through `add(name, value)`; `via` (empty)
// is where the Via value is made.
template <class Fields, class Add>
void response_list(const Fields& in, std::string_view status, std::string_view set_cookie, std::string& via,
                   Add&& add) {
  // forward_headers.cpp's is_dropped, by name (HTTP/2 names are lowercase already). Most names start
  // with none of these letters, and are kept after one look at the first.
  static constexpr std::string_view kDropped[] = {"connection", "keep-alive", "te", "trailer", "transfer-encoding",
                                                  "upgrade", "expect", "host", "x-forwarded-for",
                                                  "x-forwarded-proto"};
  const auto dropped = [](std::string_view name) {
    switch (name[0]) {
      case 'c': case 'k': case 't': case 'u': case 'e': case 'h': case 'x':
        return std::find(std::begin(kDropped), std::end(kDropped), name) != std::end(kDropped);
      case 'p': return name.starts_with("proxy-");
      default: return false;
    }
  };
  add(StaticName(":status"), status);
  for (const auto& f : in) {
    const std::string_view name = f.name;
    if (name.empty() || name[0] == ':') continue;
    if (name == "via") {
      if (!via.empty()) via.append(", ");
      via.append(f.value);
      continue;
    }
    if (dropped(name)) continue;
    add_forwarded(add, f);
  }
  if (!set_cookie.empty()) add(StaticName("set-cookie"), set_cookie);
  if (!via.empty()) via.append(", ");
  via.append("1.1 sluice");
  add(StaticName("via"), via);
}

}  // namespace

std::vector<H2Field> h2_response_fields(std::vector<H2Field>&& in, unsigned status, std::string_view set_cookie) {
  std::vector<H2Field> out;
  out.reserve(in.size() + 3);
  std::string via;
  const std::string code = std::to_string(status);
  response_list(in, code, set_cookie, via,
                [&](auto n, std::string_view v) { out.push_back({std::string(std::string_view(n)), std::string(v)}); });
  return out;
}

void h2_response_nva(const H2FieldList& in, unsigned status, std::string_view set_cookie, H2NvList& out) {
  out.clear();
  char code[16];
  const auto [end, ec] = std::to_chars(std::begin(code), std::end(code), status);
  out.status.assign(code, end);
  response_list(in, out.status, set_cookie, out.via, [&](auto n, std::string_view v) { out.add(n, v); });
}

void h1_fields_of(const std::vector<H2Field>& in, http::fields& out) {
  for (const auto& f : in) {
    if (!f.name.empty() && f.name[0] != ':') out.insert(f.name, f.value);
  }
}

void h1_fields_of(const H2FieldList& in, http::fields& out) {
  for (const auto& f : in) {
    if (!f.name.empty() && f.name[0] != ':') out.insert(f.name, f.value);
  }
}

// --- H2FieldList

H2FieldList::~H2FieldList() {
  while (blocks_) {
    Block* next = blocks_->next;
    recycler::deallocate(blocks_, sizeof(Block) + blocks_->size);
    blocks_ = next;
  }
}

void H2FieldList::clear() {
  fields_.clear();
  if (!blocks_) return;
  // The oldest block stays (the first, a usual head's size); later ones go.
  while (blocks_->next) {
    Block* next = blocks_->next;
    recycler::deallocate(blocks_, sizeof(Block) + blocks_->size);
    blocks_ = next;
  }
  blocks_->used = 0;
}

void H2FieldList::grow(std::size_t need) {
  // A usual head fits the first block (a recycled 1 KiB); a bigger one adds blocks of twice the size.
  constexpr std::size_t kFirst = 1024 - sizeof(Block);
  const std::size_t size = std::max({kFirst, need, blocks_ ? 2 * blocks_->size : std::size_t{0}});
  auto* b = static_cast<Block*>(recycler::allocate(sizeof(Block) + size));
  b->next = blocks_;
  b->size = size;
  b->used = 0;
  blocks_ = b;
}

namespace {

bool allowed_in_trailers(std::string_view name) {
  static constexpr std::string_view kForbidden[] = {"content-length", "transfer-encoding", "host", "connection",
                                                    "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                                                    "content-type", "content-encoding", "content-range"};
  if (name.empty() || name[0] == ':') return false;
  for (const auto f : kForbidden) {
    if (boost::beast::iequals(name, f)) return false;
  }
  return true;
}

}  // namespace

std::vector<H2Field> trailer_fields(const std::vector<H2Field>& in) {
  std::vector<H2Field> out;
  for (const auto& f : in) {
    if (allowed_in_trailers(f.name)) out.push_back(f);
  }
  return out;
}

std::string h1_last_chunk(const std::vector<H2Field>& trailers) {
  std::string out = "0\r\n";
  for (const auto& f : trailers) out.append(f.name).append(": ").append(f.value).append("\r\n");
  out.append("\r\n");
  return out;
}

std::vector<H2Field> h1_trailers_of(const http::fields& in, std::size_t head_count) {
  std::vector<H2Field> out;
  std::size_t i = 0;
  for (const auto& field : in) {
    if (i++ < head_count) continue;
    auto name = lowercase(field.name_string());
    if (allowed_in_trailers(name)) out.push_back({std::move(name), std::string(field.value())});
  }
  return out;
}

}  // namespace sluice::proxy
