// Route matching: which route serves a request (listener, Host, path), and the upstream request target.
#pragma once

#include <string>
#include <string_view>

namespace sluice::routing {

struct Snapshot;
struct RouteEntry;

// The route for a request, or nullptr. Host is matched case-insensitively: first the full Host
// (with its port), then the Host without port, then "*" routes. Within the first host level that has a
// matching route, the longest path wins (exact before prefix at equal length). Prefix matching is
// element-wise: "/foo" matches "/foo", "/foo/bar" and "/foo?x", not "/foobar". A route with an empty
// listener serves every listener. O(1) in the number of hosts. Any thread; allocates nothing.
const RouteEntry* match_route(const Snapshot& snap, std::string_view listener, std::string_view host,
                              std::string_view target);

// Whether `path` (no query) matches the route path `route_path` under the given rule.
bool path_matches(std::string_view route_path, bool exact, std::string_view path);

// The path part of an origin-form target (up to '?' or '#').
std::string_view path_of(std::string_view target);

// Host without its ":port" (IPv6 literals "[::1]:80" keep their brackets).
std::string_view strip_port(std::string_view host);

// Writes the target to send upstream into `out`: the route's prefix rewrite (rewrite_from -> rewrite_to,
// element-wise like route prefixes) and then the cluster's path prefix (a remote gateway's export path)
// prepended. Never returns an empty target ("/" at least).
void upstream_target(const RouteEntry& route, std::string_view cluster_prefix, std::string_view target,
                     std::string& out);

}  // namespace sluice::routing
