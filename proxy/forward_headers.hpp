// Header rules for forwarding a message to the next hop (RFC 9110 7.6).
#pragma once

#include <string_view>

#include <boost/beast/http/fields.hpp>

namespace sluice::proxy {

// Copies the end-to-end fields of `in` to `out`: drops the hop-by-hop fields (Connection and every field it
// names, Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*), Content-Length when
// `drop_content_length` (the caller re-frames the body), and Expect (the proxy answers 100-continue itself).
void copy_end_to_end(const boost::beast::http::fields& in, boost::beast::http::fields& out,
                     bool drop_content_length);

// Adds X-Forwarded-For (appending `client_ip` to any existing list), X-Forwarded-Proto (this hop's scheme,
// replacing what the client sent) and Via ("1.1 sluice", appended).
void add_forwarding_fields(boost::beast::http::fields& out, std::string_view client_ip, bool tls);

// Appends "1.1 sluice" to the Via field of a response.
void add_via(boost::beast::http::fields& out);

}  // namespace sluice::proxy
