// Header translation between a downstream HTTP/2 stream and the HTTP/1.1 messages the proxy exchanges with
// endpoints (RFC 9113 8.2-8.3): pseudo-headers <-> request line and Host, cookie crumbs joined, hop-by-hop
// fields dropped, names lowercased on the way back. Pure functions, any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/beast/http/fields.hpp>

#include "proxy/head_fields.hpp"

namespace sluice::proxy {

// One HTTP/2 header field as received or to send (name lowercase).
struct H2Field {
  std::string name;
  std::string value;
};

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
std::vector<H2Field> h2_upstream_request_fields(const boost::beast::http::fields& in, std::string_view method,
                                                std::string_view scheme, std::string_view authority,
                                                std::string_view path, std::string_view client_ip, bool client_tls);
std::vector<H2Field> h2_upstream_request_fields(const head_fields& in, std::string_view method,
                                                std::string_view scheme, std::string_view authority,
                                                std::string_view path, std::string_view client_ip, bool client_tls);

// The fields of a response (or trailers) that came as HTTP/2, for an HTTP/1.1 head: every regular field,
// pseudo-headers left out.
void h1_fields_of(const std::vector<H2Field>& in, boost::beast::http::fields& out);

}  // namespace sluice::proxy
