#include "sync/desired.hpp"

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

namespace sluice::sync {
namespace {

using nlohmann::json;

const json* child(const json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}

std::string string_of(const json* o, const char* key, std::string fallback = {}) {
  const json* c = o ? child(*o, key) : nullptr;
  return c && c->is_string() ? c->get<std::string>() : fallback;
}

bool same_port(const ImportPort& a, const ExportedPort& b) { return a.protocol == b.protocol && a.port == b.port; }

}  // namespace

std::optional<std::int64_t> parse_timestamp(const std::string& text) {
  int y, mo, d, h, mi, s;
  int used = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) != 6) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  std::int64_t t = timegm(&tm);
  std::string rest = text.substr(static_cast<std::size_t>(used));
  if (!rest.empty() && rest[0] == '.') {  // fractions: creationTimestamp has whole seconds; ignore them
    std::size_t i = 1;
    while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
    rest = rest.substr(i);
  }
  if (rest == "Z" || rest == "z") return t;
  int oh, om;
  if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && std::sscanf(rest.c_str() + 1, "%2d:%2d", &oh, &om) == 2) {
    std::int64_t off = oh * 3600 + om * 60;
    return rest[0] == '+' ? t - off : t + off;
  }
  return std::nullopt;
}

ExportInput export_input(const std::string& cluster_key, const std::string& cluster_name, const Gateway& gateway,
                         const json& service_export, const json* service) {
  ExportInput in;
  in.cluster_key = cluster_key;
  in.cluster_name = cluster_name;
  in.gateway = gateway;
  const json* meta = child(service_export, "metadata");
  in.created_text = string_of(meta, "creationTimestamp");
  in.created = parse_timestamp(in.created_text).value_or(0);
  const json* spec = child(service_export, "spec");
  in.service_account_name = string_of(spec, "serviceAccountName", "*");
  auto invalid = [&](std::string reason, std::string message) {
    in.invalid_reason = std::move(reason);
    in.invalid_message = std::move(message);
    in.ports.clear();
    return in;
  };
  if (!service) return invalid("NoService", "no Service of this name in cluster " + cluster_name);
  const json* sspec = child(*service, "spec");
  const std::string stype = string_of(sspec, "type", "ClusterIP");
  if (stype == "ExternalName") return invalid("InvalidServiceType", "an ExternalName Service cannot be exported");
  in.type = string_of(sspec, "clusterIP") == "None" ? "Headless" : "ClusterSetIP";
  in.session_affinity = string_of(sspec, "sessionAffinity", "None");
  const json* rules = spec ? child(*spec, "rules") : nullptr;
  if (!rules || !rules->is_array() || rules->empty()) return invalid("InvalidPort", "spec.rules: expected at least one rule");
  const json* sports = sspec ? child(*sspec, "ports") : nullptr;
  for (std::size_t i = 0; i < rules->size(); ++i) {
    const json& rule = (*rules)[i];
    const json* pn = child(rule, "portNumber");
    if (!pn || !pn->is_number_integer()) {
      return invalid("InvalidPort", "spec.rules[" + std::to_string(i) + "].portNumber: expected a port number");
    }
    const auto number = pn->get<std::int64_t>();
    const json* match = nullptr;
    if (sports && sports->is_array())
      for (const json& p : *sports)
        if (const json* n = child(p, "port"); n && n->is_number_integer() && n->get<std::int64_t>() == number) match = &p;
    if (!match) {
      return invalid("InvalidPort", "spec.rules[" + std::to_string(i) + "].portNumber: the Service has no port " +
                                        std::to_string(number));
    }
    const auto dup = std::find_if(in.ports.begin(), in.ports.end(),
                                  [&](const ExportedPort& p) { return p.port == number; });
    if (dup != in.ports.end()) continue;  // the first rule of a port gives its path
    ExportedPort port;
    port.name = string_of(match, "name");
    port.protocol = string_of(match, "protocol", "TCP");
    port.port = static_cast<std::uint16_t>(number);
    port.path = string_of(&rule, "path", "/");
    in.ports.push_back(std::move(port));
  }
  return in;
}

Resolution resolve(const std::vector<ExportInput>& inputs) {
  Resolution out;
  out.verdicts.resize(inputs.size());
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ExportVerdict& v = out.verdicts[i];
    v.cluster_key = inputs[i].cluster_key;
    if (!inputs[i].invalid_reason.empty()) {
      v.valid = false;
      v.valid_reason = inputs[i].invalid_reason;
      v.valid_message = inputs[i].invalid_message;
      continue;
    }
    v.valid_reason = "Valid";
    v.valid_message = "the Service is exported";
    v.conflict_reason = "NoConflicts";
    order.push_back(i);
  }
  if (order.empty()) return out;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (inputs[a].created != inputs[b].created) return inputs[a].created < inputs[b].created;
    return inputs[a].cluster_key < inputs[b].cluster_key;
  });
  const ExportInput& oldest = inputs[order.front()];
  Merged m;
  m.type = oldest.type;
  m.session_affinity = oldest.session_affinity;
  m.service_account_name = oldest.service_account_name;
  const std::string oldest_desc = "the oldest export, of cluster " + oldest.cluster_name + " (" + oldest.cluster_key + ")";
  for (std::size_t idx : order) {
    const ExportInput& in = inputs[idx];
    ExportVerdict& v = out.verdicts[idx];
    if (in.type != m.type) {
      v.conflict = true;
      v.conflict_reason = "TypeConflict";
      v.conflict_message = "type " + in.type + " conflicts with type " + m.type + " of " + oldest_desc +
                           "; this export is left out";
      continue;
    }
    std::vector<std::string> conflicts;
    ClusterStatus status{in.cluster_name, {}};
    for (const ExportedPort& p : in.ports) {
      ImportPort* target = nullptr;
      std::string conflict;
      for (ImportPort& q : m.ports) {
        if (q.name == p.name) {
          if (same_port(q, p)) target = &q;
          else conflict = "port \"" + p.name + "\" is " + q.protocol + "/" + std::to_string(q.port);
          break;
        }
        if (same_port(q, p)) {
          conflict = p.protocol + "/" + std::to_string(p.port) + " is named \"" + q.name + "\"";
          break;
        }
      }
      if (!conflict.empty()) {
        conflicts.push_back(p.protocol + "/" + std::to_string(p.port) + " \"" + p.name + "\": " + conflict);
        continue;
      }
      if (!target) {
        m.ports.push_back(ImportPort{p.name, p.protocol, p.port, {}});
        target = &m.ports.back();
      }
      ImportEndpoint ep{in.cluster_key, ImportTarget{in.gateway.host, in.gateway.ip, in.gateway.port, p.path}};
      target->endpoints.insert(std::upper_bound(target->endpoints.begin(), target->endpoints.end(), ep,
                                                [](const ImportEndpoint& a, const ImportEndpoint& b) {
                                                  return a.cluster_key < b.cluster_key;
                                                }),
                               ep);
      std::string path = p.path.empty() || p.path.front() != '/' ? "/" + p.path : p.path;
      status.addresses.push_back("http://" + (in.gateway.ip.empty() ? in.gateway.host : in.gateway.ip) + ":" +
                                 std::to_string(in.gateway.port) + path);
    }
    if (!conflicts.empty()) {
      v.conflict = true;
      v.conflict_reason = "PortConflict";
      std::string joined;
      for (const auto& c : conflicts) joined += (joined.empty() ? "" : "; ") + c;
      v.conflict_message = joined + " in " + oldest_desc + "; these ports are left out";
    }
    if (!status.addresses.empty()) m.clusters.push_back(std::move(status));
  }
  // Constituents were visited by age; the status lists clusters by key like the endpoints. Cluster
  // names are unique among members, and each member has one key.
  std::vector<std::pair<std::string, ClusterStatus>> keyed;
  for (auto& c : m.clusters) {
    std::string key;
    for (std::size_t idx : order)
      if (inputs[idx].cluster_name == c.cluster) key = inputs[idx].cluster_key;
    keyed.emplace_back(key, std::move(c));
  }
  std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  m.clusters.clear();
  for (auto& [key, c] : keyed) m.clusters.push_back(std::move(c));
  out.merged = std::move(m);
  return out;
}

json import_object(const Merged& merged, const std::string& name_space, const std::string& name,
                   const std::string& importing_key) {
  json ports = json::array();
  for (const ImportPort& p : merged.ports) {
    json endpoints = json::array();
    for (const ImportEndpoint& e : p.endpoints) {
      if (e.cluster_key == importing_key) continue;
      endpoints.push_back({{"clusterKey", e.cluster_key},
                           {"target", {{"host", e.target.host}, {"ip", e.target.ip}, {"port", e.target.port},
                                       {"path", e.target.path}}}});
    }
    json port = {{"protocol", p.protocol}, {"port", p.port}, {"endpoints", std::move(endpoints)}};
    if (!p.name.empty()) port["name"] = p.name;
    ports.push_back(std::move(port));
  }
  json clusters = json::array();
  for (const ClusterStatus& c : merged.clusters) clusters.push_back({{"cluster", c.cluster}, {"addresses", c.addresses}});
  return {
      {"apiVersion", "flomesh.io/v1alpha1"},
      {"kind", "ServiceImport"},
      {"metadata", {{"name", name}, {"namespace", name_space}, {"labels", {{managed_by_label, managed_by_value}}}}},
      {"spec", {{"type", merged.type},
                {"sessionAffinity", merged.session_affinity},
                {"serviceAccountName", merged.service_account_name},
                {"ports", std::move(ports)}}},
      {"status", {{"clusters", std::move(clusters)}}},
  };
}

json carry_over(const json& existing, const json* desired, const std::map<std::string, std::string>& unknown,
                const std::map<std::string, std::string>& names_to_keys) {
  const json* spec = child(existing, "spec");
  const json* ports = spec ? child(*spec, "ports") : nullptr;
  if (!ports || !ports->is_array()) return desired ? *desired : json();
  // The unknown members' endpoints, per port of the existing import.
  json carried = json::array();
  for (const json& p : *ports) {
    json eps = json::array();
    if (const json* e = child(p, "endpoints"); e && e->is_array())
      for (const json& ep : *e)
        if (unknown.count(string_of(&ep, "clusterKey"))) eps.push_back(ep);
    if (eps.empty()) continue;
    json port = p;
    port["endpoints"] = std::move(eps);
    carried.push_back(std::move(port));
  }
  if (carried.empty()) return desired ? *desired : json();
  json out;
  if (desired) {
    out = *desired;
  } else {
    out = {{"apiVersion", existing.value("apiVersion", "flomesh.io/v1alpha1")},
           {"kind", "ServiceImport"},
           {"metadata", {{"name", existing["metadata"].value("name", "")},
                         {"namespace", existing["metadata"].value("namespace", "")},
                         {"labels", {{managed_by_label, managed_by_value}}}}},
           {"spec", *spec},
           {"status", {{"clusters", json::array()}}}};
    out["spec"]["ports"] = json::array();
  }
  json& out_ports = out["spec"]["ports"];
  auto by_key = [](const json& a, const json& b) { return a.value("clusterKey", "") < b.value("clusterKey", ""); };
  for (const json& c : carried) {
    json* target = nullptr;
    bool conflict = false;
    for (json& p : out_ports) {
      if (p.value("name", "") != c.value("name", "")) continue;
      if (p.value("protocol", "TCP") == c.value("protocol", "TCP") && p.value("port", 0) == c.value("port", 0)) target = &p;
      else conflict = true;  // the port changed meanwhile: the unknown member's old one cannot join
      break;
    }
    if (conflict) continue;
    if (!target) {
      out_ports.push_back(c);
      continue;
    }
    json& eps = (*target)["endpoints"];
    for (const json& ep : c["endpoints"]) {
      bool present = false;
      for (const json& have : eps) present = present || have.value("clusterKey", "") == ep.value("clusterKey", "");
      if (!present) eps.push_back(ep);
    }
    std::sort(eps.begin(), eps.end(), by_key);
  }
  // Their status.clusters entries, and the list kept in cluster key order.
  json& clusters = out["status"]["clusters"];
  if (const json* st = child(existing, "status"); st && child(*st, "clusters") && (*st)["clusters"].is_array())
    for (const json& c : (*st)["clusters"]) {
      const std::string name = string_of(&c, "cluster");
      bool is_unknown = false;
      for (const auto& [key, n] : unknown) is_unknown = is_unknown || n == name;
      bool present = false;
      for (const json& have : clusters) present = present || string_of(&have, "cluster") == name;
      if (is_unknown && !present) clusters.push_back(c);
    }
  auto key_of_name = [&](const json& c) {
    auto it = names_to_keys.find(string_of(&c, "cluster"));
    return it == names_to_keys.end() ? string_of(&c, "cluster") : it->second;
  };
  std::sort(clusters.begin(), clusters.end(), [&](const json& a, const json& b) { return key_of_name(a) < key_of_name(b); });
  return out;
}

bool is_managed(const json& object) {
  const json* meta = child(object, "metadata");
  const json* labels = meta ? child(*meta, "labels") : nullptr;
  return string_of(labels, managed_by_label) == managed_by_value;
}

bool import_matches(const json& existing, const json& desired) {
  if (!is_managed(existing)) return false;
  const json* a = child(existing, "spec");
  const json* b = child(desired, "spec");
  if (!a || !b || *a != *b) return false;
  const json* sa = child(existing, "status");
  const json* sb = child(desired, "status");
  const json* ca = sa ? child(*sa, "clusters") : nullptr;
  const json* cb = sb ? child(*sb, "clusters") : nullptr;
  return (ca ? *ca : json::array()) == (cb ? *cb : json::array());
}

json export_conditions(const ExportVerdict& v, const json& current, const std::string& now) {
  auto condition = [&](const char* type, bool status, const std::string& reason, const std::string& message) {
    json c = {{"type", type}, {"status", status ? "True" : "False"}, {"reason", reason}, {"message", message},
              {"lastTransitionTime", now}};
    if (current.is_array())
      for (const json& old : current)
        if (string_of(&old, "type") == type && string_of(&old, "status") == c["status"].get<std::string>())
          c["lastTransitionTime"] = string_of(&old, "lastTransitionTime", now);
    return c;
  };
  // Conditions of other types belong to other controllers: kept as they are, before ours.
  json out = json::array();
  if (current.is_array())
    for (const json& old : current)
      if (const std::string type = string_of(&old, "type"); type != "Valid" && type != "Conflict") out.push_back(old);
  out.push_back(condition("Valid", v.valid, v.valid_reason, v.valid_message));
  if (v.valid) out.push_back(condition("Conflict", v.conflict, v.conflict_reason, v.conflict_message));
  return out;
}

bool conditions_differ(const json& current, const json& desired) {
  auto strip = [](const json& list) {
    json out = json::array();
    if (!list.is_array()) return out;
    for (json c : list) {
      if (c.is_object()) c.erase("lastTransitionTime");
      out.push_back(std::move(c));
    }
    return out;
  };
  return strip(current) != strip(desired);
}

}  // namespace sluice::sync
