#include "discovery/objects.hpp"

#include <nlohmann/json.hpp>

#include "config/text.hpp"

namespace sluice::discovery {
namespace {

using nlohmann::json;

// Thrown inside a parser, caught at its boundary and turned into the error string.
struct Malformed {
  std::string message;
};

[[noreturn]] void malformed(const std::string& field, const std::string& problem) {
  throw Malformed{field + ": " + problem};
}

// The member `key` of `o`, or nullptr when absent or null.
const json* child(const json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

const json& object_at(const json& o, const char* key, const std::string& field) {
  const json* c = child(o, key);
  if (!c) malformed(field, "missing");
  if (!c->is_object()) malformed(field, "expected an object");
  return *c;
}

// An optional array: empty when absent.
const json& array_at(const json& o, const char* key, const std::string& field) {
  static const json empty = json::array();
  const json* c = child(o, key);
  if (!c) return empty;
  if (!c->is_array()) malformed(field, "expected an array");
  return *c;
}

std::string string_at(const json& o, const char* key, const std::string& field, bool required) {
  const json* c = child(o, key);
  if (!c) {
    if (required) malformed(field, "missing");
    return {};
  }
  if (!c->is_string()) malformed(field, "expected a string");
  return c->get<std::string>();
}

// A cluster key field (required): "region/zone/group/name" as config::parse_cluster_key reads it. Anything
// else would reach the routing model as a cluster no config could name (found by
// tests/fuzz/fuzz_kubernetes: a translated model must pass config::validate_config).
std::string cluster_key_at(const json& o, const char* key, const std::string& field) {
  std::string k = string_at(o, key, field, true);
  if (k.empty()) malformed(field, "empty");
  if (!config::parse_cluster_key(k)) malformed(field, "expected a cluster key \"region/zone/group/name\", got \"" + k + "\"");
  return k;
}

bool bool_at(const json& o, const char* key, const std::string& field, bool fallback) {
  const json* c = child(o, key);
  if (!c) return fallback;
  if (!c->is_boolean()) malformed(field, "expected true or false");
  return c->get<bool>();
}

std::uint16_t port_value(const json& v, const std::string& field) {
  if (!v.is_number_integer()) malformed(field, "expected an integer port");
  auto n = v.get<std::int64_t>();
  if (n < 1 || n > 65535) malformed(field, "expected 1..65535, got " + std::to_string(n));
  return static_cast<std::uint16_t>(n);
}

std::uint16_t port_at(const json& o, const char* key, const std::string& field) {
  const json* c = child(o, key);
  if (!c) malformed(field, "missing");
  return port_value(*c, field);
}

std::string label(const json& object, const char* key) {
  const json* meta = child(object, "metadata");
  const json* labels = meta ? child(*meta, "labels") : nullptr;
  const json* v = labels ? child(*labels, key) : nullptr;
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

// `names_service`: the object's name is a service's (Service, the imports, ServiceExport,
// GlobalTrafficPolicy), so it must be one config::validate_config accepts; the namespace always is.
// Otherwise the translated model would hold a service no config could name (found by
// tests/fuzz/fuzz_kubernetes).
ObjectMeta meta_of(const json& object, bool names_service = true) {
  if (!object.is_object()) malformed("object", "expected a JSON object");
  const json& m = object_at(object, "metadata", "metadata");
  ObjectMeta meta;
  meta.name = string_at(m, "name", "metadata.name", true);
  if (meta.name.empty()) malformed("metadata.name", "empty");
  if (names_service && !config::is_name_part(meta.name))
    malformed("metadata.name", "expected letters, digits, '-' or '_', got \"" + meta.name + "\"");
  meta.name_space = string_at(m, "namespace", "metadata.namespace", true);
  if (!config::is_name_part(meta.name_space))
    malformed("metadata.namespace", "expected letters, digits, '-' or '_', got \"" + meta.name_space + "\"");
  meta.resource_version = string_at(m, "resourceVersion", "metadata.resourceVersion", false);
  return meta;
}

std::string at(const std::string& base, std::size_t i) { return base + "[" + std::to_string(i) + "]"; }

template <typename F>
auto guarded(std::string& error, F&& parse) -> std::optional<decltype(parse())> {
  try {
    return parse();
  } catch (const Malformed& m) {
    error = m.message;
  } catch (const json::exception& e) {
    error = std::string("object: ") + e.what();
  }
  return std::nullopt;
}

}  // namespace

std::optional<ObjectMeta> parse_meta(const json& object, std::string& error) {
  return guarded(error, [&] { return meta_of(object); });
}

std::optional<KService> parse_service(const json& object, std::string& error) {
  return guarded(error, [&] {
    KService s;
    s.meta = meta_of(object);
    const json& spec = object_at(object, "spec", "spec");
    const json& ports = array_at(spec, "ports", "spec.ports");
    for (std::size_t i = 0; i < ports.size(); ++i) {
      std::string f = at("spec.ports", i);
      ServicePort p;
      p.name = string_at(ports[i], "name", f + ".name", false);
      p.port = port_at(ports[i], "port", f + ".port");
      if (const json* t = child(ports[i], "targetPort"); t && t->is_number_integer())
        p.target_port = port_value(*t, f + ".targetPort");
      else if (!t)
        p.target_port = p.port;  // the API defaults targetPort to port
      s.ports.push_back(std::move(p));
    }
    return s;
  });
}

std::optional<KEndpointSlice> parse_endpoint_slice(const json& object, std::string& error) {
  return guarded(error, [&] {
    KEndpointSlice s;
    s.meta = meta_of(object, false);
    s.service_name = label(object, "kubernetes.io/service-name");
    s.mcs_service_name = label(object, "multicluster.kubernetes.io/service-name");
    s.mcs_source_cluster = label(object, "multicluster.kubernetes.io/source-cluster");
    // A cluster key, or a bare cluster name that translate() places in the local region/zone/group.
    if (!s.mcs_source_cluster.empty() &&
        !config::parse_cluster_key(s.mcs_source_cluster.find('/') == std::string::npos
                                       ? "r/z/g/" + s.mcs_source_cluster : s.mcs_source_cluster)) {
      malformed("metadata.labels[multicluster.kubernetes.io/source-cluster]",
                "expected a cluster key or a cluster name, got \"" + s.mcs_source_cluster + "\"");
    }
    const json& ports = array_at(object, "ports", "ports");
    for (std::size_t i = 0; i < ports.size(); ++i) {
      SlicePort p;
      p.name = string_at(ports[i], "name", at("ports", i) + ".name", false);
      p.port = port_at(ports[i], "port", at("ports", i) + ".port");
      s.ports.push_back(std::move(p));
    }
    const json& endpoints = array_at(object, "endpoints", "endpoints");
    for (std::size_t i = 0; i < endpoints.size(); ++i) {
      std::string f = at("endpoints", i);
      const json& addresses = array_at(endpoints[i], "addresses", f + ".addresses");
      if (addresses.empty()) malformed(f + ".addresses", "expected at least one address");
      if (!addresses[0].is_string() || addresses[0].get<std::string>().empty())
        malformed(f + ".addresses[0]", "expected an address string");
      SliceEndpoint e;
      e.address = addresses[0].get<std::string>();
      if (!config::is_ip_literal(e.address) && !config::is_host_name(e.address))
        malformed(f + ".addresses[0]", "expected an IP address or host name, got \"" + e.address + "\"");
      if (const json* c = child(endpoints[i], "conditions")) {
        e.ready = bool_at(*c, "ready", f + ".conditions.ready", true);
        e.serving = bool_at(*c, "serving", f + ".conditions.serving", e.ready);
        e.terminating = bool_at(*c, "terminating", f + ".conditions.terminating", false);
      }
      s.endpoints.push_back(std::move(e));
    }
    return s;
  });
}

std::optional<KServiceImport> parse_service_import(const json& object, std::string& error) {
  return guarded(error, [&] {
    KServiceImport s;
    s.meta = meta_of(object);
    const json& spec = object_at(object, "spec", "spec");
    const json& ports = array_at(spec, "ports", "spec.ports");
    for (std::size_t i = 0; i < ports.size(); ++i) {
      std::string f = at("spec.ports", i);
      ImportPort p;
      p.name = string_at(ports[i], "name", f + ".name", false);
      p.port = port_at(ports[i], "port", f + ".port");
      const json& eps = array_at(ports[i], "endpoints", f + ".endpoints");
      for (std::size_t j = 0; j < eps.size(); ++j) {
        std::string g = at(f + ".endpoints", j);
        ImportTarget t;
        t.cluster_key = cluster_key_at(eps[j], "clusterKey", g + ".clusterKey");
        const json& target = object_at(eps[j], "target", g + ".target");
        t.address = string_at(target, "ip", g + ".target.ip", false);
        if (t.address.empty()) t.address = string_at(target, "host", g + ".target.host", false);
        if (t.address.empty()) malformed(g + ".target", "neither ip nor host");
        if (!config::is_ip_literal(t.address) && !config::is_host_name(t.address))
          malformed(g + ".target", "expected an IP address or host name, got \"" + t.address + "\"");
        t.port = port_at(target, "port", g + ".target.port");
        t.path = string_at(target, "path", g + ".target.path", false);
        // The path prefix of the service's cluster at that gateway ("/" alone: none), under validate_config's
        // rule for path_prefix: a trailing '/' reached the routing model, which no config could hold
        // (found by tests/fuzz/fuzz_kubernetes).
        if (!t.path.empty() && (t.path.front() != '/' || (t.path.size() > 1 && t.path.back() == '/'))) {
          malformed(g + ".target.path", "expected a path like /httpbin (leading '/', no trailing '/'), got '" + t.path + "'");
        }
        p.endpoints.push_back(std::move(t));
      }
      s.ports.push_back(std::move(p));
    }
    return s;
  });
}

std::optional<KServiceExport> parse_service_export(const json& object, std::string& error) {
  return guarded(error, [&] {
    KServiceExport s;
    s.meta = meta_of(object);
    const json& spec = object_at(object, "spec", "spec");
    if (const json* rw = child(spec, "pathRewrite")) {
      if (!rw->is_object()) malformed("spec.pathRewrite", "expected an object");
      std::string from = string_at(*rw, "from", "spec.pathRewrite.from", true);
      // ErieCanal writes regexes anchored at the start ("^/httpbin"); routing rewrites a literal prefix.
      if (!from.empty() && from.front() == '^') from.erase(0, 1);
      if (from.find_first_of("$*+?()[]{}|\\") != std::string::npos)
        malformed("spec.pathRewrite.from", "only an anchored literal prefix is supported, got '" + from + "'");
      s.rewrite_from = from;
      s.rewrite_to = string_at(*rw, "to", "spec.pathRewrite.to", false);
      // Routing rewrites a path prefix into a path (validate_config's rule; found by fuzz_kubernetes).
      if (!from.empty() && from.front() != '/')
        malformed("spec.pathRewrite.from", "expected a path starting with '/' (after '^'), got '" + from + "'");
      if (from.empty() != s.rewrite_to.empty())
        malformed(from.empty() ? "spec.pathRewrite.from" : "spec.pathRewrite.to", "required with the other");
      if (!s.rewrite_to.empty() && s.rewrite_to.front() != '/')
        malformed("spec.pathRewrite.to", "expected a path starting with '/', got '" + s.rewrite_to + "'");
    }
    s.session_sticky = bool_at(spec, "sessionSticky", "spec.sessionSticky", false);
    // ErieCanal's spellings only (config/text.hpp).
    const std::string lb = string_at(spec, "loadBalancer", "spec.loadBalancer", false);
    if (!lb.empty()) {
      s.load_balancer = config::parse_enum(config::load_balancer_names, lb, true);
      if (!s.load_balancer) malformed("spec.loadBalancer", "unknown load balancer '" + lb + "'");
    }
    const json& rules = array_at(spec, "rules", "spec.rules");
    if (rules.empty()) malformed("spec.rules", "expected at least one rule");
    for (std::size_t i = 0; i < rules.size(); ++i) {
      std::string f = at("spec.rules", i);
      ExportRule r;
      r.port_number = port_at(rules[i], "portNumber", f + ".portNumber");
      r.path = string_at(rules[i], "path", f + ".path", false);
      if (r.path.empty()) r.path = "/";
      if (r.path.front() != '/') malformed(f + ".path", "expected a path starting with /");
      const std::string type = string_at(rules[i], "pathType", f + ".pathType", false);
      if (!type.empty()) {
        const auto match = config::parse_enum(config::path_match_names, type, true);
        if (!match) malformed(f + ".pathType", "expected Prefix or Exact, got '" + type + "'");
        r.path_match = *match;
      }
      s.rules.push_back(std::move(r));
    }
    return s;
  });
}

std::optional<KTrafficPolicy> parse_traffic_policy(const json& object, std::string& error) {
  return guarded(error, [&] {
    KTrafficPolicy p;
    p.meta = meta_of(object);
    const json& spec = object_at(object, "spec", "spec");
    const std::string lb = string_at(spec, "lbType", "spec.lbType", false);
    if (!lb.empty()) {
      const auto type = config::parse_enum(config::lb_type_names, lb, true);
      if (!type) malformed("spec.lbType", "expected Locality, ActiveActive or FailOver, got '" + lb + "'");
      p.lb_type = *type;
    }
    const json& targets = array_at(spec, "targets", "spec.targets");
    for (std::size_t i = 0; i < targets.size(); ++i) {
      std::string f = at("spec.targets", i);
      PolicyTargetRef t;
      t.cluster_key = cluster_key_at(targets[i], "clusterKey", f + ".clusterKey");
      // A cluster listed twice has no one weight or failover order (found by tests/fuzz/fuzz_kubernetes).
      for (const auto& earlier : p.targets)
        if (earlier.cluster_key == t.cluster_key) malformed(f + ".clusterKey", "duplicate \"" + t.cluster_key + "\"");
      if (const json* w = child(targets[i], "weight")) {
        // The config's bounds (config/bounds.hpp): a weight of 0 reached the routing model, which
        // validate_config refuses in any config (found by tests/fuzz/fuzz_kubernetes).
        if (!w->is_number_integer() || w->get<std::int64_t>() < 1 || w->get<std::int64_t>() > 1000000)
          malformed(f + ".weight", "expected an integer 1..1000000");
        t.weight = static_cast<std::uint32_t>(w->get<std::int64_t>());
      }
      p.targets.push_back(std::move(t));
    }
    return p;
  });
}

}  // namespace sluice::discovery
