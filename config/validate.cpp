#include "config/validate.hpp"

#include <arpa/inet.h>

#include <array>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "config/bounds.hpp"
#include "config/text.hpp"

namespace sluice::config {
namespace {

using std::chrono::milliseconds;

bool is_ip(const std::string& a) { return is_ip_literal(a); }

bool is_wildcard(const std::string& a) { return a == "0.0.0.0" || a == "::"; }

// Two binds clash on the same port when the addresses are equal or one is a
// wildcard covering the other's family ("::" is dual-stack on Linux).
bool binds_clash(const std::string& a1, std::uint16_t p1, const std::string& a2, std::uint16_t p2) {
  if (p1 != p2) return false;
  if (a1 == a2 || a1 == "::" || a2 == "::") return true;
  const bool v6_1 = a1.find(':') != std::string::npos;
  const bool v6_2 = a2.find(':') != std::string::npos;
  return v6_1 == v6_2 && (is_wildcard(a1) || is_wildcard(a2));
}

std::string endpoint_text(const std::string& address, std::uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

class Checker {
 public:
  Checker(const Config& c, Errors& errors) : config_(c), errors_(errors) {}

  void run() {
    check_top();
    check_listeners();
    for (std::size_t i = 0; i < config_.services.size(); ++i) check_service(i);
    check_routes();
  }

 private:
  void add(const std::string& path, const std::string& problem) { errors_.add(path, problem); }

  template <class T>
  void range(const std::string& path, T value, std::int64_t lo, std::int64_t hi) {
    const auto v = static_cast<std::int64_t>(value);
    if (v < lo || v > hi) add(path, "expected " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + std::to_string(v));
  }

  void positive(const std::string& path, milliseconds d) {
    if (d.count() <= 0) add(path, "expected a positive duration, got " + in_quotes(format_duration(d)));
  }

  void not_negative(const std::string& path, milliseconds d) {
    if (d.count() < 0) add(path, "expected a duration >= 0, got " + in_quotes(format_duration(d)));
  }

  void readable(const std::string& path, const std::string& file) {
    std::error_code ec;
    if (std::filesystem::is_directory(file, ec) || !std::ifstream(file).is_open()) {
      add(path, "cannot read " + in_quotes(file));
    }
  }

  void required_file(const std::string& path, const std::string& file) {
    if (file.empty()) {
      add(path, "expected a file name, got \"\"");
    } else {
      readable(path, file);
    }
  }

  void check_cluster_key(const std::string& path, const std::string& key) {
    if (!parse_cluster_key(key)) add(path, "expected a cluster key \"region/zone/group/name\", got " + in_quotes(key));
  }

  void check_top() {
    const auto& id = config_.cluster;
    const std::array<std::pair<const char*, const std::string*>, 4> parts{
        {{"region", &id.region}, {"zone", &id.zone}, {"group", &id.group}, {"name", &id.name}}};
    for (const auto& [key, value] : parts) {
      if (value->empty() || value->find('/') != std::string::npos) {
        add(std::string("cluster.") + key, "expected a non-empty name without '/', got " + in_quotes(*value));
      }
    }
    range("workers", config_.workers, 0, bounds::max_workers);
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error"};
    if (!levels.count(config_.log_level)) {
      add("log_level", "expected one of \"trace\", \"debug\", \"info\", \"warn\", \"error\", got " + in_quotes(config_.log_level));
    }
    const auto& l = config_.limits;
    range("limits.max_request_header_bytes", l.max_request_header_bytes, bounds::min_header_bytes, bounds::max_header_bytes);
    range("limits.max_request_headers", l.max_request_headers, 1, bounds::max_header_count);
    range("limits.max_response_header_bytes", l.max_response_header_bytes, bounds::min_header_bytes, bounds::max_header_bytes);
    range("limits.max_tunnels", l.max_tunnels, 0, bounds::max_count);
    range("limits.max_connections_per_worker", l.max_connections_per_worker, 1, bounds::max_count);
    range("limits.max_requests_per_worker", l.max_requests_per_worker, 1, bounds::max_count);
    const auto& t = config_.timeouts;
    positive("timeouts.request_header", t.request_header);
    positive("timeouts.idle", t.idle);
    positive("timeouts.connect", t.connect);
    positive("timeouts.response", t.response);
    positive("timeouts.stream_idle", t.stream_idle);
    not_negative("timeouts.drain", t.drain);
    positive("upstream.idle_timeout", config_.upstream.idle_timeout);
    if (config_.admin.enabled) {
      if (!is_ip(config_.admin.address)) add("admin.address", "expected an IP address, got " + in_quotes(config_.admin.address));
      range("admin.port", config_.admin.port, bounds::min_port, bounds::max_port);
    }
    if (config_.mesh_tls) {
      const MeshTls& m = *config_.mesh_tls;
      for (const auto& [key, file] : {std::pair{"ca_file", &m.ca_file}, std::pair{"cert_file", &m.cert_file},
                                      std::pair{"key_file", &m.key_file}}) {
        required_file(std::string("mesh_tls.") + key, *file);
      }
    }
    const auto& k = config_.kubernetes;
    not_negative("kubernetes.coalesce", k.coalesce);
    for (std::size_t i = 0; i < k.namespaces.size(); ++i) {
      if (!is_name_part(k.namespaces[i])) add(index_path("kubernetes.namespaces", i), "expected a namespace name, got " + in_quotes(k.namespaces[i]));
    }
    std::set<std::string> sources;
    for (std::size_t i = 0; i < config_.sources.size(); ++i) {
      const std::string& name = config_.sources[i];
      const std::string at = index_path("sources", i);
      if (name.empty()) add(at, "expected a source name, got \"\"");
      check_plugin_name(at, name);
      if (!name.empty() && !sources.insert(name).second) add(at, "duplicate source " + in_quotes(name));
    }
  }

  void check_listeners() {
    std::map<std::string, std::size_t> names;
    const auto& ls = config_.listeners;
    for (std::size_t i = 0; i < ls.size(); ++i) {
      const auto& l = ls[i];
      const std::string at = index_path("listeners", i);
      if (l.name.empty()) {
        add(at + ".name", "required");
      } else if (auto [it, fresh] = names.emplace(l.name, i); !fresh) {
        add(at + ".name", "duplicate listener name " + in_quotes(l.name) + " (also listeners[" + std::to_string(it->second) + "])");
      }
      if (!is_ip(l.address)) add(at + ".address", "expected an IP address, got " + in_quotes(l.address));
      range(at + ".port", l.port, bounds::min_port, bounds::max_port);
      for (std::size_t j = 0; j < i; ++j) {
        if (binds_clash(l.address, l.port, ls[j].address, ls[j].port)) {
          add(at + ".port", endpoint_text(l.address, l.port) + " clashes with listener " + in_quotes(ls[j].name) + " on " + endpoint_text(ls[j].address, ls[j].port));
          break;
        }
      }
      if (config_.admin.enabled && binds_clash(l.address, l.port, config_.admin.address, config_.admin.port)) {
        add("admin.port", endpoint_text(config_.admin.address, config_.admin.port) + " clashes with listener " + in_quotes(l.name));
      }
      if (l.tls) {
        required_file(at + ".tls.cert_file", l.tls->cert_file);
        required_file(at + ".tls.key_file", l.tls->key_file);
        if (!l.tls->client_ca_file.empty()) readable(at + ".tls.client_ca_file", l.tls->client_ca_file);
      }
    }
  }

  void check_endpoints(const std::string& at, const ClusterEndpoints& ce) {
    std::set<std::pair<std::string, std::uint16_t>> seen;
    for (std::size_t k = 0; k < ce.endpoints.size(); ++k) {
      const auto& e = ce.endpoints[k];
      const std::string ep = index_path(at + ".endpoints", k);
      if (!is_ip(e.address) && !is_host_name(e.address)) {
        add(ep + ".address", "expected an IP address or host name, got " + in_quotes(e.address));
      }
      range(ep + ".port", e.port, bounds::min_port, bounds::max_port);
      range(ep + ".weight", e.weight, bounds::min_weight, bounds::max_weight);
      if (!seen.emplace(e.address, e.port).second) add(ep, "duplicate endpoint " + endpoint_text(e.address, e.port));
    }
  }

  void check_tls_client(const std::string& at, const TlsClient& t) {
    if (!t.ca_file.empty()) readable(at + ".ca_file", t.ca_file);
    if (t.cert_file.empty() != t.key_file.empty()) {
      add(at + (t.cert_file.empty() ? ".cert_file" : ".key_file"), "required with " + std::string(t.cert_file.empty() ? "key_file" : "cert_file"));
    }
    if (!t.cert_file.empty()) readable(at + ".cert_file", t.cert_file);
    if (!t.key_file.empty()) readable(at + ".key_file", t.key_file);
  }

  void check_service(std::size_t i) {
    const Service& s = config_.services[i];
    const std::string at = index_path("services", i);
    if (!is_name_part(s.name)) add(at + ".name", s.name.empty() ? "required" : "expected letters, digits, '-' or '_', got " + in_quotes(s.name));
    if (!is_name_part(s.name_space)) add(at + ".namespace", "expected letters, digits, '-' or '_', got " + in_quotes(s.name_space));
    if (auto [it, fresh] = service_ids_.emplace(s.id(), i); !fresh) {
      add(at + ".name", "duplicate service " + in_quotes(s.id()) + " (also services[" + std::to_string(it->second) + "])");
    }
    std::set<std::uint16_t> ports;
    for (std::size_t j = 0; j < s.ports.size(); ++j) {
      range(index_path(at + ".ports", j), s.ports[j], bounds::min_port, bounds::max_port);
      if (!ports.insert(s.ports[j]).second) add(index_path(at + ".ports", j), "duplicate port " + std::to_string(s.ports[j]));
    }
    std::set<std::string> clusters;
    for (std::size_t j = 0; j < s.clusters.size(); ++j) {
      const auto& ce = s.clusters[j];
      const std::string cp = index_path(at + ".clusters", j);
      check_cluster_key(cp + ".cluster", ce.cluster);
      if (!clusters.insert(ce.cluster).second) add(cp + ".cluster", "duplicate cluster " + in_quotes(ce.cluster));
      if (!ce.path_prefix.empty() && (ce.path_prefix.front() != '/' || ce.path_prefix.back() == '/')) {
        add(cp + ".path_prefix", "expected a path like \"/httpbin\" (leading '/', no trailing '/'), got " + in_quotes(ce.path_prefix));
      }
      check_endpoints(cp, ce);
      if (ce.tls) check_tls_client(cp + ".tls", *ce.tls);
      // h2 and auto choose the protocol by ALPN, which needs TLS: the cluster's own, or mesh mTLS towards
      // a remote cluster's gateway. h2c is the plain-TCP form, so it cannot go with a TLS block.
      const bool h2_tls = ce.protocol == UpstreamProtocol::h2 || ce.protocol == UpstreamProtocol::auto_alpn;
      if (h2_tls && !ce.tls && !(config_.mesh_tls && ce.cluster != config_.cluster.key())) {
        add(cp + ".protocol", std::string("\"") + std::string(to_string(ce.protocol)) +
                                  "\" needs TLS (a \"tls\" block here, or mesh_tls to a remote cluster); use \"h2c\" for plain HTTP/2");
      }
      if (ce.protocol == UpstreamProtocol::h2c && ce.tls) {
        add(cp + ".protocol", "\"h2c\" is HTTP/2 over plain TCP but this cluster has \"tls\"; use \"h2\" or \"auto\"");
      }
    }
    if (s.load_balancer == LoadBalancer::hashing && s.hash.on != HashOn::client_address && s.hash.name.empty()) {
      add(at + ".hash.name", std::string("required when hashing on a ") + (s.hash.on == HashOn::header ? "header" : "cookie"));
    }
    if (s.session_sticky.enabled) {
      const auto& cookie = s.session_sticky.cookie;
      const bool token = !cookie.empty() && cookie.find_first_of(" \t\r\n\"(),/:;<=>?@[\\]{}") == std::string::npos;
      if (!token) add(at + ".session_sticky.cookie", "expected a cookie name, got " + in_quotes(cookie));
    }
    not_negative(at + ".session_sticky.ttl", s.session_sticky.ttl);
    check_policy(at + ".policy", s.policy);
    check_plugin_name(at + ".load_balancer_plugin", s.load_balancer_plugin);
    const auto& o = s.outlier_detection;
    range(at + ".outlier_detection.consecutive_failures", o.consecutive_failures, 1, bounds::max_count);
    range(at + ".outlier_detection.consecutive_local_origin_failures", o.consecutive_local_origin_failures, 1, bounds::max_count);
    range(at + ".outlier_detection.consecutive_gateway_failures", o.consecutive_gateway_failures, 1, bounds::max_count);
    positive(at + ".outlier_detection.probe_interval", o.probe_interval);
    if (o.max_probe_interval < o.probe_interval) {
      add(at + ".outlier_detection.max_probe_interval", "must be at least probe_interval (" + format_duration(o.probe_interval) + ")");
    }
    positive(at + ".outlier_detection.base_ejection_time", o.base_ejection_time);
    if (o.max_ejection_time < o.base_ejection_time) {
      add(at + ".outlier_detection.max_ejection_time", "must be at least base_ejection_time (" + format_duration(o.base_ejection_time) + ")");
    }
    if (!(o.max_ejection_percent >= 0 && o.max_ejection_percent <= bounds::max_percent)) add(at + ".outlier_detection.max_ejection_percent", "expected 0..100");
    check_health(at + ".health_check", s.health_check);
    const auto& r = s.retry;
    range(at + ".retry.max_retries", r.max_retries, 0, bounds::max_retries);
    if (!(r.budget_percent >= 0 && r.budget_percent <= bounds::max_percent)) add(at + ".retry.budget_percent", "expected 0..100");
    range(at + ".retry.max_pending_per_endpoint", r.max_pending_per_endpoint, 1, bounds::max_count);
    not_negative(at + ".slow_start_window", s.slow_start_window);
    positive(at + ".tunnel.idle_timeout", s.tunnel.idle_timeout);
    not_negative(at + ".tunnel.max_lifetime", s.tunnel.max_lifetime);
  }

  void check_policy(const std::string& at, const TrafficPolicy& p) {
    std::set<std::string> seen;
    for (std::size_t j = 0; j < p.targets.size(); ++j) {
      const std::string tp = index_path(at + ".targets", j);
      check_cluster_key(tp + ".cluster", p.targets[j].cluster);
      if (!seen.insert(p.targets[j].cluster).second) add(tp + ".cluster", "duplicate target " + in_quotes(p.targets[j].cluster));
      if (p.targets[j].weight) range(tp + ".weight", *p.targets[j].weight, bounds::min_weight, bounds::max_weight);
    }
    if (!(p.overprovisioning >= 0 && p.overprovisioning <= bounds::max_overprovisioning)) add(at + ".overprovisioning", "expected 0..100");
    if (!(p.panic_threshold >= 0 && p.panic_threshold <= 1)) add(at + ".panic_threshold", "expected 0..1");
    check_plugin_name(at + ".plugin", p.plugin);
  }

  // Plugin names are registered by the embedding program, so only their form is checked here; an
  // unregistered name is reported when the proxy is built (sluice::Proxy).
  void check_plugin_name(const std::string& at, const std::string& name) {
    if (name.empty()) return;
    const bool ok = name.size() <= 128 && name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == std::string::npos;
    if (!ok) add(at, "expected a plugin name (letters, digits, '.', '_', '-'; at most 128), got " + in_quotes(name));
  }

  void check_health(const std::string& at, const HealthCheck& h) {
    if (h.path.empty() || h.path.front() != '/') add(at + ".path", "expected a path starting with '/', got " + in_quotes(h.path));
    positive(at + ".interval", h.interval);
    positive(at + ".timeout", h.timeout);
    if (h.timeout >= h.interval) {
      add(at + ".timeout", "must be less than interval (" + format_duration(h.interval) + "), got " + in_quotes(format_duration(h.timeout)));
    }
    range(at + ".healthy_threshold", h.healthy_threshold, 1, bounds::max_count);
    range(at + ".unhealthy_threshold", h.unhealthy_threshold, 1, bounds::max_count);
    if (!(h.jitter >= 0 && h.jitter <= 1)) add(at + ".jitter", "expected 0..1");
  }

  void check_routes() {
    std::set<std::string> listeners;
    for (const auto& l : config_.listeners) listeners.insert(l.name);
    // (listener, host, path, match) -> first route index, to catch a route that can never match.
    std::map<std::tuple<std::string, std::string, std::string, PathMatch>, std::size_t> seen;
    for (std::size_t i = 0; i < config_.routes.size(); ++i) {
      const Route& r = config_.routes[i];
      const std::string at = index_path("routes", i);
      if (r.hosts.empty()) add(at + ".hosts", "expected at least one host (\"*\" matches any)");
      for (std::size_t j = 0; j < r.hosts.size(); ++j) {
        const auto& h = r.hosts[j];
        if (h.empty() || h.find_first_of(" \t\r\n/") != std::string::npos) {
          add(index_path(at + ".hosts", j), "expected a host name, \"name:port\" or \"*\", got " + in_quotes(h));
        } else if (auto [it, fresh] = seen.emplace(std::tuple{r.listener, h, r.path, r.path_match}, i); !fresh) {
          add(index_path(at + ".hosts", j), "same host and path as routes[" + std::to_string(it->second) + "]: this route never matches");
        }
      }
      if (r.path.empty() || r.path.front() != '/') add(at + ".path", "expected a path starting with '/', got " + in_quotes(r.path));
      if (r.service.empty()) {
        add(at + ".service", "required");
      } else if (!service_ids_.count(r.service)) {
        add(at + ".service", "no service " + in_quotes(r.service) + " (services are named \"name.namespace\")");
      }
      if (!r.listener.empty() && !listeners.count(r.listener)) add(at + ".listener", "no listener " + in_quotes(r.listener));
      if (r.rewrite_from.empty() != r.rewrite_to.empty()) {
        add(at + (r.rewrite_from.empty() ? ".rewrite_from" : ".rewrite_to"), "required with " + std::string(r.rewrite_from.empty() ? "rewrite_to" : "rewrite_from"));
      } else if (!r.rewrite_from.empty() && r.rewrite_from.front() != '/') {
        add(at + ".rewrite_from", "expected a path starting with '/', got " + in_quotes(r.rewrite_from));
      } else if (!r.rewrite_to.empty() && r.rewrite_to.front() != '/') {
        add(at + ".rewrite_to", "expected a path starting with '/', got " + in_quotes(r.rewrite_to));
      }
    }
  }

  const Config& config_;
  Errors& errors_;
  std::map<std::string, std::size_t> service_ids_;
};

}  // namespace

void validate_config(const Config& config, Errors& errors) { Checker(config, errors).run(); }

std::vector<std::string> validate_config(const Config& config) {
  Errors errors;
  validate_config(config, errors);
  return errors.take();
}

}  // namespace sluice::config
