// Request keys for hashing and session stickiness (ErieCanal sessionSticky): cookie parsing and the
// sticky cookie's format. The cookie's value is the endpoint's token (a stable hash of its identity) in
// hex, so it stays valid across snapshot rebuilds and across workers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace sluice::routing {

// The value of cookie `name` in a Cookie header ("a=1; b=2"), or "" when absent.
std::string_view cookie_value(std::string_view cookie_header, std::string_view name);

// Parses a token written by format_token (16 hex digits).
std::optional<std::uint64_t> parse_token(std::string_view text);

// Writes the Set-Cookie value pinning a client to the endpoint with `token` into `out`:
// "<name>=<16 hex>; Path=/; HttpOnly" plus "; Max-Age=<s>" when the ttl is set.
void format_sticky_cookie(const config::SessionSticky& sticky, std::uint64_t token, std::string& out);

}  // namespace sluice::routing
