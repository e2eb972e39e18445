#include "proxy/forward_headers.hpp"

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/rfc7230.hpp>

namespace sluice::proxy {
namespace {

namespace http = boost::beast::http;

constexpr std::string_view kVia = "1.1 sluice";

bool is_hop_by_hop(http::field f, std::string_view name) {
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
      return true;
    default:
      break;
  }
  return name.size() >= 6 && boost::beast::iequals(name.substr(0, 6), "proxy-");
}

bool named_by_connection(const http::fields& in, std::string_view name) {
  for (auto it = in.find(http::field::connection); it != in.end() && it->name() == http::field::connection;
       ++it) {
    for (auto token : http::token_list{it->value()}) {
      if (boost::beast::iequals(token, name)) return true;
    }
  }
  return false;
}

void append_list(http::fields& out, std::string_view name, std::string_view value) {
  auto it = out.find(name);
  if (it == out.end()) {
    out.insert(name, value);
    return;
  }
  std::string joined(it->value());
  joined.append(", ");
  joined.append(value);
  out.set(name, joined);
}

}  // namespace

void copy_end_to_end(const http::fields& in, http::fields& out, bool drop_content_length) {
  const bool has_connection = in.find(http::field::connection) != in.end();
  for (const auto& field : in) {
    const auto f = field.name();
    const std::string_view name = field.name_string();
    if (is_hop_by_hop(f, name)) continue;
    if (drop_content_length && f == http::field::content_length) continue;
    if (has_connection && named_by_connection(in, name)) continue;
    if (f == http::field::unknown) {
      out.insert(name, field.value());
    } else {
      out.insert(f, field.value());
    }
  }
}

void add_forwarding_fields(http::fields& out, std::string_view client_ip, bool tls) {
  append_list(out, "X-Forwarded-For", client_ip);
  out.set("X-Forwarded-Proto", tls ? "https" : "http");
  append_list(out, "Via", kVia);
}

void add_via(http::fields& out) { append_list(out, "Via", kVia); }

}  // namespace sluice::proxy
