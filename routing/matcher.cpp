#include "routing/matcher.hpp"

#include "routing/hash.hpp"
#include "routing/snapshot.hpp"

namespace sluice::routing {
namespace {

// Hosts longer than this cannot be routed by name (DNS names are at most 253 bytes, plus a port).
constexpr std::size_t kMaxHost = 300;

bool listener_matches(const RouteEntry& r, std::string_view listener) {
  return r.listener.empty() || r.listener == listener;
}

const RouteEntry* first_match(const Snapshot& snap, const std::uint32_t* ids, std::size_t count,
                              std::string_view listener, std::string_view path) {
  for (std::size_t k = 0; k < count; ++k) {
    const RouteEntry& r = snap.routes[ids[k]];
    if (listener_matches(r, listener) &&
        path_matches(r.path, r.path_match == config::PathMatch::exact, path)) {
      return &r;
    }
  }
  return nullptr;
}

const RouteEntry* match_host(const Snapshot& snap, std::string_view host, std::string_view listener,
                             std::string_view path, const ServicePrefetch& also) {
  const HostIndex::Routes routes = snap.hosts.find(host);
  if (routes.count == 0) return nullptr;
  // The route's service is most likely next: start loading it (and the caller's data for it) while the
  // route itself loads.
  if (routes.service < snap.services.size()) {
    const char* svc = reinterpret_cast<const char*>(&snap.services[routes.service]);
    __builtin_prefetch(svc);
    __builtin_prefetch(svc + 64);
    if (also.base && routes.service < also.count) {
      const char* p = also.base + routes.service * also.stride;
      for (std::size_t at = 0; at < also.bytes; at += 64) __builtin_prefetch(p + at);
    }
  }
  return first_match(snap, routes.ids, routes.count, listener, path);
}

}  // namespace

std::string_view path_of(std::string_view target) {
  // A plain loop: find_first_of with a two-character set costs a memchr per character.
  for (std::size_t i = 0; i < target.size(); ++i) {
    if (target[i] == '?' || target[i] == '#') return target.substr(0, i);
  }
  return target;
}

std::string_view strip_port(std::string_view host) {
  const auto colon = host.rfind(':');
  if (colon == std::string_view::npos) return host;
  const auto bracket = host.rfind(']');
  if (bracket != std::string_view::npos && bracket > colon) return host;  // "[::1]" without port
  if (bracket == std::string_view::npos && host.find(':') != colon) return host;  // bare IPv6
  return host.substr(0, colon);
}

bool path_matches(std::string_view route_path, bool exact, std::string_view path) {
  if (exact) return path.size() == route_path.size() && equal_bytes(path.data(), route_path.data(), path.size());
  if (path.size() < route_path.size() || !equal_bytes(path.data(), route_path.data(), route_path.size())) return false;
  // Element-wise: the prefix must end at a path segment boundary.
  return path.size() == route_path.size() || route_path.back() == '/' || path[route_path.size()] == '/';
}

const RouteEntry* match_route(const Snapshot& snap, std::string_view listener, std::string_view host,
                              std::string_view target, const ServicePrefetch& also) {
  const std::string_view path = path_of(target);
  if (host.size() <= kMaxHost && !host.empty()) {
    // Lowercase and find the port in one pass (strip_port's rules, without its three scans).
    char buf[kMaxHost];
    std::size_t colons = 0, last_colon = 0, last_bracket = std::string_view::npos;
    for (std::size_t i = 0; i < host.size(); ++i) {
      const char c = host[i];
      buf[i] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;  // ASCII only, locale-free
      if (c == ':') {
        ++colons;
        last_colon = i;
      } else if (c == ']') {
        last_bracket = i;
      }
    }
    const std::string_view lower(buf, host.size());
    const bool has_port = colons != 0 && (last_bracket == std::string_view::npos
                                              ? colons == 1                 // a bare IPv6 address has no port
                                              : last_bracket < last_colon);  // "[::1]:8080", not "[::1]"
    const std::string_view bare = has_port ? lower.substr(0, last_colon) : lower;
    // Route hosts with a port are rare: skip that lookup when the snapshot has none.
    if (snap.hosts_with_port || bare.size() == lower.size()) {
      if (const RouteEntry* r = match_host(snap, lower, listener, path, also)) return r;
    }
    if (bare.size() != lower.size()) {
      if (const RouteEntry* r = match_host(snap, bare, listener, path, also)) return r;
    }
  }
  return first_match(snap, snap.wildcard_routes.data(), snap.wildcard_routes.size(), listener, path);
}

void upstream_target(const RouteEntry& route, std::string_view cluster_prefix, std::string_view target,
                     std::string& out) {
  std::string_view rest = target;
  std::string_view replacement;
  if (!route.rewrite_from.empty() && path_matches(route.rewrite_from, false, path_of(target))) {
    rest = target.substr(route.rewrite_from.size());
    replacement = route.rewrite_to;
  }
  // Join prefix, replacement and rest without doubling or losing the '/' between them.
  out.clear();
  out.reserve(cluster_prefix.size() + replacement.size() + rest.size() + 1);
  auto append = [&out](std::string_view part) {
    if (part.empty()) return;
    if (!out.empty() && out.back() == '/' && part.front() == '/') part.remove_prefix(1);
    else if (!out.empty() && out.back() != '/' && part.front() != '/' && part.front() != '?') out += '/';
    out += part;
  };
  append(cluster_prefix);
  append(replacement);
  append(rest);
  if (out.empty() || out.front() != '/') out.insert(out.begin(), '/');
}

}  // namespace sluice::routing
