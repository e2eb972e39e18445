// JSON text -> config::Config: one line per key (json_reader.hpp does the
// type checks, ranges and unknown keys), then validate_config for the checks
// that span fields. The schema is documented in config/README.md.
#include "config/parse.hpp"

#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "config/bounds.hpp"
#include "config/json_reader.hpp"
#include "config/text.hpp"
#include "config/validate.hpp"

namespace sluice::config {
namespace {

using namespace bounds;

// --- top-level sections ------------------------------------------------------

void parse_identity_object(ObjectReader& r, ClusterIdentity& c) {
  r.string("region", c.region);
  r.string("zone", c.zone);
  r.string("group", c.group);
  r.string("name", c.name);
}

// "cluster" is an object or the key string "region/zone/group/name".
void parse_identity(ObjectReader& r, ClusterIdentity& c) {
  const json* j = r.take("cluster");
  if (!j) return;
  if (j->is_string()) {
    const auto& key = j->get_ref<const std::string&>();
    if (auto parsed = parse_cluster_key(key)) {
      c = *parsed;
    } else {
      r.error("cluster", "expected a cluster key \"region/zone/group/name\", got " + describe(*j));
    }
    return;
  }
  ObjectReader nested(*j, r.path_of("cluster"), r.errors());
  if (nested.valid()) parse_identity_object(nested, c);
}

void parse_limits(ObjectReader& r, Limits& l) {
  r.integer("max_request_header_bytes", l.max_request_header_bytes, min_header_bytes, max_header_bytes);
  r.integer("max_request_headers", l.max_request_headers, 1, max_header_count);
  r.integer("max_response_header_bytes", l.max_response_header_bytes, min_header_bytes, max_header_bytes);
  r.integer("max_tunnels", l.max_tunnels, 0, max_count);
  r.integer("max_connections_per_worker", l.max_connections_per_worker, 1, max_count);
  r.integer("max_requests_per_worker", l.max_requests_per_worker, 1, max_count);
}

void parse_timeouts(ObjectReader& r, Timeouts& t) {
  r.duration("request_header", t.request_header);
  r.duration("idle", t.idle);
  r.duration("connect", t.connect);
  r.duration("response", t.response);
  r.duration("stream_idle", t.stream_idle);
  r.duration("drain", t.drain);
}

void parse_upstream(ObjectReader& r, UpstreamPool& u) {
  r.integer("max_idle_per_endpoint", u.max_idle_per_endpoint, 0, max_count);
  r.duration("idle_timeout", u.idle_timeout);
}

void parse_admin(ObjectReader& r, Admin& a) {
  r.boolean("enabled", a.enabled);
  r.string("address", a.address);
  r.integer("port", a.port, min_port, max_port);
}

void parse_access_log(ObjectReader& r, AccessLog& a) {
  r.boolean("enabled", a.enabled);
  r.string("path", a.path);
}

void parse_kubernetes(ObjectReader& r, Kubernetes& k) {
  r.boolean("enabled", k.enabled);
  r.string("kubeconfig", k.kubeconfig);
  r.string("context", k.context);
  r.strings("namespaces", k.namespaces);
  r.duration("coalesce", k.coalesce);
}

void parse_mesh_tls(ObjectReader& r, MeshTls& t) {
  r.string("ca_file", t.ca_file, required);
  r.string("cert_file", t.cert_file, required);
  r.string("key_file", t.key_file, required);
}

// --- listeners ---------------------------------------------------------------

void parse_tls_server(ObjectReader& r, TlsServer& t) {
  r.string("cert_file", t.cert_file, required);
  r.string("key_file", t.key_file, required);
  r.string("client_ca_file", t.client_ca_file);
}

void parse_listener(ObjectReader& r, Listener& l) {
  r.string("name", l.name, required);
  r.string("address", l.address);
  r.integer("port", l.port, min_port, max_port, required);
  r.enumeration("role", l.role, role_names);
  r.optional_object("tls", l.tls, parse_tls_server);
}

// --- services ----------------------------------------------------------------

// "127.0.0.1:9001", "[::1]:9001" or "host:port".
void parse_endpoint_text(const std::string& text, const std::string& path, Errors& errors, Endpoint& e) {
  const std::string shape = "expected \"host:port\" or \"[ipv6]:port\", got " + json(text).dump();
  std::string_view host;
  std::string_view port;
  const std::string_view s = text;
  if (!s.empty() && s.front() == '[') {
    const auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':') {
      return errors.add(path, shape);
    }
    host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else {
    const auto colon = s.rfind(':');
    if (colon == std::string_view::npos) return errors.add(path, shape);
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return errors.add(path, "an IPv6 address needs brackets, e.g. \"[::1]:9001\", got " + json(text).dump());
    }
  }
  unsigned long value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (host.empty() || port.empty() || ec != std::errc{} || end != port.data() + port.size()) {
    return errors.add(path, shape);
  }
  if (value < static_cast<unsigned long>(min_port) || value > static_cast<unsigned long>(max_port)) {
    return errors.add(path, "port expected 1..65535, got " + std::string(port));
  }
  e.address = std::string(host);
  e.port = static_cast<std::uint16_t>(value);
}

void parse_endpoint(const json& v, const std::string& path, Errors& errors, Endpoint& e) {
  if (v.is_string()) return parse_endpoint_text(v.get<std::string>(), path, errors, e);
  if (!v.is_object()) {
    return errors.add(path, "expected \"host:port\" or an object, got " + describe(v));
  }
  ObjectReader r(v, path, errors);
  r.string("address", e.address, required);
  r.integer("port", e.port, min_port, max_port, required);
  r.integer("weight", e.weight, min_weight, max_weight);
  r.boolean("ready", e.ready);
  r.boolean("terminating", e.terminating);
}

void parse_tls_client(ObjectReader& r, TlsClient& t) {
  r.string("ca_file", t.ca_file);
  r.string("cert_file", t.cert_file);
  r.string("key_file", t.key_file);
  r.string("server_name", t.server_name);
}

void parse_cluster_endpoints(ObjectReader& r, ClusterEndpoints& c) {
  r.string("cluster", c.cluster, required);
  r.string("path_prefix", c.path_prefix);
  r.array("endpoints", c.endpoints, parse_endpoint);
  r.optional_object("tls", c.tls, parse_tls_client);
  r.enumeration("protocol", c.protocol, upstream_protocol_names);
}

void parse_hash(ObjectReader& r, HashPolicy& h) {
  r.enumeration("on", h.on, hash_on_names);
  r.string("name", h.name);
}

void parse_sticky_object(ObjectReader& r, SessionSticky& s) {
  r.boolean("enabled", s.enabled);
  r.string("cookie", s.cookie);
  r.duration("ttl", s.ttl);
}

// A target is the cluster key string or {"cluster", "weight"}.
void parse_target(const json& v, const std::string& path, Errors& errors, PolicyTarget& t) {
  if (v.is_string()) {
    t.cluster = v.get<std::string>();
    return;
  }
  if (!v.is_object()) return errors.add(path, "expected a cluster key or an object, got " + describe(v));
  ObjectReader r(v, path, errors);
  r.string("cluster", t.cluster, required);
  r.integer("weight", t.weight, min_weight, max_weight);
}

void parse_policy(ObjectReader& r, TrafficPolicy& p) {
  r.enumeration("lb_type", p.lb_type, lb_type_names);
  r.array("targets", p.targets, parse_target);
  r.number("overprovisioning", p.overprovisioning, 0, max_overprovisioning);
  r.number("panic_threshold", p.panic_threshold, 0, 1);
  r.string("plugin", p.plugin);
}

void parse_outlier(ObjectReader& r, OutlierDetection& o) {
  r.boolean("enabled", o.enabled);
  r.integer("consecutive_local_origin_failures", o.consecutive_local_origin_failures, 1, max_count);
  r.integer("consecutive_gateway_failures", o.consecutive_gateway_failures, 1, max_count);
  r.integer("consecutive_failures", o.consecutive_failures, 1, max_count);
  r.duration("probe_interval", o.probe_interval);
  r.duration("max_probe_interval", o.max_probe_interval);
  r.duration("base_ejection_time", o.base_ejection_time);
  r.duration("max_ejection_time", o.max_ejection_time);
  r.number("max_ejection_percent", o.max_ejection_percent, 0, max_percent);
}

void parse_health_check(ObjectReader& r, HealthCheck& h) {
  r.boolean("enabled", h.enabled);
  r.string("path", h.path);
  r.duration("interval", h.interval);
  r.duration("timeout", h.timeout);
  r.integer("healthy_threshold", h.healthy_threshold, 1, max_count);
  r.integer("unhealthy_threshold", h.unhealthy_threshold, 1, max_count);
  r.number("jitter", h.jitter, 0, 1);
}

void parse_tunnel(ObjectReader& r, Tunnel& t) {
  r.duration("idle_timeout", t.idle_timeout);
  r.duration("max_lifetime", t.max_lifetime);
}

void parse_retry(ObjectReader& r, RetryPolicy& p) {
  r.integer("max_retries", p.max_retries, 0, bounds::max_retries);
  r.number("budget_percent", p.budget_percent, 0, max_percent);
  r.integer("min_retry_concurrency", p.min_retry_concurrency, 0, max_count);
  r.boolean("retry_on_5xx", p.retry_on_5xx);
  r.boolean("retry_on_timeout", p.retry_on_timeout);
  r.integer("max_pending_per_endpoint", p.max_pending_per_endpoint, 1, max_count);
}

void parse_port(const json& v, const std::string& path, Errors& errors, std::uint16_t& port) {
  std::int64_t value = 0;
  if (read_integer(v, path, errors, min_port, max_port, value)) port = static_cast<std::uint16_t>(value);
}

void parse_service(ObjectReader& r, Service& s) {
  r.string("name", s.name, required);
  r.string("namespace", s.name_space);
  r.array("ports", s.ports, parse_port);
  r.objects("clusters", s.clusters, parse_cluster_endpoints);
  r.enumeration("load_balancer", s.load_balancer, load_balancer_names);
  r.string("load_balancer_plugin", s.load_balancer_plugin);
  r.object("hash", s.hash, parse_hash);
  // ErieCanal writes `sessionSticky: true`; the object form sets the cookie too.
  if (const json* j = r.take("session_sticky"); j && j->is_boolean()) {
    s.session_sticky.enabled = j->get<bool>();
  } else if (j) {
    ObjectReader nested(*j, r.path_of("session_sticky"), r.errors());
    if (nested.valid()) parse_sticky_object(nested, s.session_sticky);
  }
  r.object("policy", s.policy, parse_policy);
  r.object("outlier_detection", s.outlier_detection, parse_outlier);
  r.object("health_check", s.health_check, parse_health_check);
  r.object("retry", s.retry, parse_retry);
  r.object("tunnel", s.tunnel, parse_tunnel);
  r.duration("slow_start_window", s.slow_start_window);
}

// --- routes and the document -------------------------------------------------

void parse_route(ObjectReader& r, Route& route) {
  r.string("listener", route.listener);
  r.strings("hosts", route.hosts, required);
  r.string("path", route.path);
  r.enumeration("path_match", route.path_match, path_match_names);
  r.string("service", route.service, required);
  r.string("host_rewrite", route.host_rewrite);
  r.string("rewrite_from", route.rewrite_from);
  r.string("rewrite_to", route.rewrite_to);
}

void parse_document(ObjectReader& r, Config& c) {
  parse_identity(r, c.cluster);
  r.integer("workers", c.workers, 0, max_workers);
  r.string("log_level", c.log_level);
  r.object("limits", c.limits, parse_limits);
  r.object("timeouts", c.timeouts, parse_timeouts);
  r.object("upstream", c.upstream, parse_upstream);
  r.object("admin", c.admin, parse_admin);
  r.object("access_log", c.access_log, parse_access_log);
  r.object("kubernetes", c.kubernetes, parse_kubernetes);
  r.strings("sources", c.sources);
  r.objects("listeners", c.listeners, parse_listener);
  r.objects("services", c.services, parse_service);
  r.objects("routes", c.routes, parse_route);
  r.optional_object("mesh_tls", c.mesh_tls, parse_mesh_tls);
}

// JSON text -> Config without validate_config. False (and errors) when the
// text is not JSON.
bool read_document(std::string_view text, Config& out, Errors& errors) {
  const std::optional<json> document = parse_json(text, errors);
  if (!document) return false;
  ObjectReader reader(*document, "", errors);
  if (reader.valid()) parse_document(reader, out);
  return true;
}

ParseResult finish(Config&& config, Errors&& errors) {
  validate_config(config, errors);
  ParseResult result;
  if (errors.empty()) {
    result.config = std::move(config);
  } else {
    result.errors = errors.take();
  }
  return result;
}

// Relative TLS file names in a config file are relative to that file's
// directory (as nginx resolves them against its conf prefix), so `--check`
// gives the same answer from any working directory.
void resolve_files(Config& c, const std::filesystem::path& base) {
  const auto resolve = [&base](std::string& file) {
    if (!file.empty() && std::filesystem::path(file).is_relative()) file = (base / file).lexically_normal().string();
  };
  if (c.mesh_tls) {
    resolve(c.mesh_tls->ca_file);
    resolve(c.mesh_tls->cert_file);
    resolve(c.mesh_tls->key_file);
  }
  for (auto& l : c.listeners) {
    if (!l.tls) continue;
    resolve(l.tls->cert_file);
    resolve(l.tls->key_file);
    resolve(l.tls->client_ca_file);
  }
  for (auto& s : c.services) {
    for (auto& ce : s.clusters) {
      if (!ce.tls) continue;
      resolve(ce.tls->ca_file);
      resolve(ce.tls->cert_file);
      resolve(ce.tls->key_file);
    }
  }
}

}  // namespace

ParseResult parse_config(std::string_view json_text) {
  Config config;
  Errors errors;
  if (!read_document(json_text, config, errors)) return {std::nullopt, errors.take()};
  return finish(std::move(config), std::move(errors));
}

ParseResult load_config_file(const std::string& path) {
  const ParseResult unreadable{std::nullopt, {path + ": cannot read the config file"}};
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return unreadable;  // opens, but reads fail
  std::ifstream in(path, std::ios::binary);
  if (!in) return unreadable;
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return unreadable;
  Config config;
  Errors errors;
  if (!read_document(text, config, errors)) {
    std::vector<std::string> list = errors.take();
    for (auto& e : list) e = path + ": " + e;
    return {std::nullopt, std::move(list)};
  }
  resolve_files(config, std::filesystem::path(path).parent_path());
  return finish(std::move(config), std::move(errors));
}

// Go-style: one or more <number><unit>, e.g. "1h30m", "1.5s", "250ms"; "0" alone
// is zero. Millisecond precision, rounded to nearest.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text == "0") return std::chrono::milliseconds{0};
  if (text.empty()) return std::nullopt;
  // Beyond ~100 years is surely a typo, and keeps the sum far from overflow.
  constexpr double max_ms = 100.0 * 365 * 24 * 3600 * 1000;
  double total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    const std::string_view number = text.substr(start, i - start);
    if (number.empty() || number.front() == '.' || number.back() == '.' ||
        number.find('.') != number.rfind('.') || number.size() > 15) {
      return std::nullopt;
    }
    double unit = 0;
    if (text.substr(i, 2) == "ms") {
      unit = 1, i += 2;
    } else if (i < text.size() && text[i] == 's') {
      unit = 1000, i += 1;
    } else if (i < text.size() && text[i] == 'm') {
      unit = 60'000, i += 1;
    } else if (i < text.size() && text[i] == 'h') {
      unit = 3'600'000, i += 1;
    } else {
      return std::nullopt;
    }
    double value = 0;  // from_chars: no locale, unlike stod
    std::from_chars(number.data(), number.data() + number.size(), value);
    total += value * unit;
    if (total > max_ms) return std::nullopt;
  }
  return std::chrono::milliseconds{static_cast<std::int64_t>(total + 0.5)};
}

}  // namespace sluice::config
