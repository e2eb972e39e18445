#include "discovery/status.hpp"

#include <functional>

namespace sluice::discovery {
namespace {

std::string escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') { out += "\\n"; continue; }
    out.push_back(c);
  }
  return out;
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string render_prometheus(const Status& s) {
  std::string out;
  auto gauge = [&](const char* name, const char* help, std::uint64_t v) {
    header(out, name, "gauge", help);
    out += std::string(name) + " " + std::to_string(v) + "\n";
  };
  gauge("sluice_discovery_synced", "1 when every Kubernetes resource has been listed once", s.has_synced_once);
  gauge("sluice_discovery_stale", "1 while a watch is disconnected and routing keeps the last-known-good data", s.stale);
  gauge("sluice_discovery_services", "services in the last translation", s.services);
  header(out, "sluice_discovery_last_publish_latency_seconds", "gauge",
         "first event of the last burst to routable, without the coalescing window");
  out += "sluice_discovery_last_publish_latency_seconds " +
         std::to_string(static_cast<double>(s.last_publish_latency.count()) / 1e6) + "\n";
  header(out, "sluice_discovery_publishes_total", "counter", "routing models published");
  out += "sluice_discovery_publishes_total " + std::to_string(s.publishes) + "\n";
  header(out, "sluice_discovery_malformed_objects_total", "counter", "objects skipped as malformed");
  out += "sluice_discovery_malformed_objects_total " + std::to_string(s.malformed_objects) + "\n";

  auto per_resource = [&](const char* name, const char* type, const char* help,
                          const std::function<std::uint64_t(const ResourceStatus&)>& value) {
    header(out, name, type, help);
    for (const auto& r : s.resources)
      out += std::string(name) + "{resource=\"" + escape(r.resource) + "\",namespace=\"" + escape(r.name_space) +
             "\"} " + std::to_string(value(r)) + "\n";
  };
  per_resource("sluice_discovery_resource_synced", "gauge", "1 when the resource has been listed once",
               [](const auto& r) { return r.synced ? 1u : 0u; });
  per_resource("sluice_discovery_resource_absent", "gauge", "1 when the resource is not served (CRD missing)",
               [](const auto& r) { return r.absent ? 1u : 0u; });
  per_resource("sluice_discovery_resource_connected", "gauge", "1 while the watch stream is open",
               [](const auto& r) { return r.connected ? 1u : 0u; });
  per_resource("sluice_discovery_resource_stale", "gauge", "1 while the resource's data may be behind",
               [](const auto& r) { return r.stale ? 1u : 0u; });
  per_resource("sluice_discovery_watch_restarts_total", "counter", "watch requests after the first",
               [](const auto& r) { return r.watch_restarts; });
  per_resource("sluice_discovery_relists_total", "counter", "lists after the first (410 Gone and recoveries)",
               [](const auto& r) { return r.relists; });
  per_resource("sluice_discovery_failures_total", "counter", "connection, TLS, HTTP or stream failures",
               [](const auto& r) { return r.failures; });
  per_resource("sluice_discovery_events_total", "counter", "watch events applied",
               [](const auto& r) { return r.events; });
  per_resource("sluice_discovery_objects", "gauge", "objects held", [](const auto& r) { return r.objects; });
  return out;
}

}  // namespace sluice::discovery
