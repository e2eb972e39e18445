#include "proxy/h2_headers.hpp"

#include <algorithm>
#include <cctype>

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

}  // namespace

std::string h2_request_fields(const H2RequestLine& line, const std::vector<H2Field>& fields, http::fields& out) {
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
  if (!via.empty()) via.append(", ");
  via.append("1.1 sluice");
  out.push_back({"via", std::move(via)});
  return out;
}

}  // namespace sluice::proxy
