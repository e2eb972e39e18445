#include "proxy/head_checks.hpp"

#include <cstdint>

#include <boost/url/parse.hpp>

namespace sluice::proxy {

HeadRefusal refusal_of(HeadScan scan) {
  switch (scan) {
    case HeadScan::bare_lf: return {http::status::bad_request, "bare LF line ending in request head"};
    case HeadScan::obs_fold: return {http::status::bad_request, "obsolete line folding in request head"};
    case HeadScan::empty_first_line: return {http::status::bad_request, "empty line before the request line"};
    case HeadScan::too_large: return {http::status::request_header_fields_too_large, "request head too large"};
    case HeadScan::too_many_headers:
      return {http::status::request_header_fields_too_large, "too many header fields"};
    default: return {http::status::bad_request, "malformed request head"};
  }
}

HeadRefusal refusal_of_parse(const boost::system::error_code& ec) {
  if (!ec) return {http::status::bad_request, "bad request head"};
  return {ec == http::error::header_limit ? http::status::request_header_fields_too_large : http::status::bad_request,
          "bad request: " + ec.message()};
}

LineVersion request_line_version(std::string_view line) {
  static constexpr std::size_t kLen = 8;  // "HTTP/1.1"
  if (line.size() < kLen + 1 || line[line.size() - kLen - 1] != ' ') return LineVersion::unknown;
  const auto v = line.substr(line.size() - kLen);
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (!v.starts_with("HTTP/") || !digit(v[5]) || v[6] != '.' || !digit(v[7])) return LineVersion::unknown;
  if (v[5] != '1') return LineVersion::other_major;
  if (v[7] == '0') return LineVersion::v10;
  return v[7] == '1' ? LineVersion::v11 : LineVersion::newer_minor;
}

std::optional<HeadRefusal> normalize_request_version(char* head, std::size_t size) {
  const std::string_view view(head, size);
  const auto line = view.substr(0, view.find("\r\n"));
  const auto version = request_line_version(line);
  if (version == LineVersion::newer_minor) head[line.size() - 1] = '1';
  if (version == LineVersion::other_major) {
    return HeadRefusal{http::status::http_version_not_supported,
                       "unsupported HTTP version " + std::string(line.substr(line.size() - 8))};
  }
  return std::nullopt;
}

void prepare_request_parser(request_head_parser& parser, std::size_t max_header_bytes) {
  parser.header_limit(max_header_bytes);
  parser.body_limit(boost::none);
  parser.eager(false);
}

std::optional<HeadRefusal> check_request_head(request_head& req, std::string& authority) {
  // One walk of the (few) fields with enum compares instead of three lookups in Beast's case-insensitive
  // name index. The list is in arrival order, so the first Host here is the one find() would give.
  const request_head::value_type* host = nullptr;
  std::size_t hosts = 0;
  bool transfer_encoding = false;
  for (const auto& field : req) {
    if (field.name() == http::field::host) {
      if (hosts++ == 0) host = &field;
    } else if (field.name() == http::field::transfer_encoding) {
      transfer_encoding = true;
    }
  }
  // assign, not a new string: the session's authority keeps its storage from request to request.
  if (host) {
    authority.assign(host->value().data(), host->value().size());
  } else {
    authority.clear();
  }
  if (req.version() != 11 && req.version() != 10) {
    return HeadRefusal{http::status::http_version_not_supported, "unsupported HTTP version"};
  }
  if (req.version() == 11 && !host) return HeadRefusal{http::status::bad_request, "missing Host header"};
  // RFC 9112 3.2: more than one Host is refused; sender and recipient could route on different ones.
  if (hosts > 1) return HeadRefusal{http::status::bad_request, "more than one Host header"};
  // RFC 9112 6.1 and 6.3: a Transfer-Encoding whose last coding is not chunked leaves the body's length
  // unknown, and Transfer-Encoding in HTTP/1.0 is faulty framing. Beast would frame such a request as
  // bodiless, so its body would be read as the next request (smuggling): refuse it and close instead.
  if (transfer_encoding && (req.version() != 11 || !req.chunked())) {
    return HeadRefusal{http::status::bad_request, "Transfer-Encoding must end in chunked (and needs HTTP/1.1)"};
  }
  // RFC 9112 3.2.2: a server accepts the absolute form (what a client configured with the sidecar as its
  // HTTP proxy sends); its authority replaces Host, and the origin form goes upstream.
  if (!req.target().empty() && req.target()[0] != '/' && req.method() != http::verb::options) {
    auto url = boost::urls::parse_absolute_uri(req.target());
    if (url && url->has_authority() && !url->encoded_host().empty() &&
        (url->scheme_id() == boost::urls::scheme::http || url->scheme_id() == boost::urls::scheme::https)) {
      std::string origin = url->encoded_path().empty() ? std::string("/") : std::string(url->encoded_path());
      if (url->has_query()) {
        origin.push_back('?');
        origin.append(url->encoded_query());
      }
      authority = std::string(url->encoded_host_and_port());
      req.set(http::field::host, authority);
      req.target(origin);
    }
  }
  if (req.target().empty() || (req.target()[0] != '/' && req.method() != http::verb::options)) {
    return HeadRefusal{http::status::bad_request, "request target must be origin-form"};
  }
  return std::nullopt;
}

}  // namespace sluice::proxy
