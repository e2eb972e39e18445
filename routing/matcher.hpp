// Route matching: which route serves a request (listener, Host, path), and the upstream request target.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace sluice::routing {

struct Snapshot;
struct RouteEntry;

// A caller's per-service array (a worker's cached service views) to start loading as soon as the host
// names a service, before the route is read: with many services the element is cold, and this takes it
// off the chain of dependent cache misses (host slot -> route -> service -> element).
struct ServicePrefetch {
  const char* base = nullptr;  // element i at base + i * stride; null: nothing to prefetch
  std::size_t stride = 0;
  std::size_t count = 0;       // elements
  std::size_t bytes = 0;       // how much of an element to load, from its start
};

// The route for a request, or nullptr. Host is matched case-insensitively: first the full Host
// (with its port), then the Host without port, then "*" routes. Within the first host level that has a
// matching route, the longest path wins (exact before prefix at equal length). Prefix matching is
// element-wise: "/foo" matches "/foo", "/foo/bar" and "/foo?x", not "/foobar". A route with an empty
// listener serves every listener. O(1) in the number of hosts. Any thread; allocates nothing.
// `also`: loaded (prefetched) for the host's first route's service, when there is one.
const RouteEntry* match_route(const Snapshot& snap, std::string_view listener, std::string_view host,
                              std::string_view target, const ServicePrefetch& also = {});

// Route precedence, the one rule for every list of routes: whether route `a` is tried before route `b`
// when both could match: the longer path first, exact before prefix at equal length. When neither is
// before the other, the earlier in the list wins (callers sort stably). `Route`: config::Route or
// RouteEntry (anything with `path` and `path_match`). Any thread.
template <class Route>
bool ranks_before(const Route& a, const Route& b) {
  if (a.path.size() != b.path.size()) return a.path.size() > b.path.size();
  return a.path_match == config::PathMatch::exact && b.path_match != config::PathMatch::exact;
}

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
