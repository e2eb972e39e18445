#include "discovery/status.hpp"

#include "prometheus/writer.hpp"

namespace sluice::discovery {

void render_prometheus(const Status& s, prometheus::Writer& out) {
  using prometheus::Type;
  const auto single = [&out](const char* name, Type type, const char* help, auto value) {
    out.family(name, type, help);
    out.sample(value);
  };
  single("sluice_discovery_synced", Type::gauge, "1 when every Kubernetes resource has been listed once",
         s.has_synced_once);
  single("sluice_discovery_stale", Type::gauge,
         "1 while a watch is disconnected and routing keeps the last-known-good data", s.stale);
  single("sluice_discovery_services", Type::gauge, "services in the last translation", s.services);
  single("sluice_discovery_last_publish_latency_seconds", Type::gauge,
         "first event of the last burst to routable, without the coalescing window",
         static_cast<double>(s.last_publish_latency.count()) / 1e6);
  single("sluice_discovery_publishes_total", Type::counter, "routing models published", s.publishes);
  single("sluice_discovery_malformed_objects_total", Type::counter, "objects skipped as malformed",
         s.malformed_objects);
  single("sluice_discovery_api_probes_total", Type::counter,
         "GET /version probes sent while watches back off after losing the API server", s.api_probes);
  single("sluice_discovery_api_returns_total", Type::counter,
         "times a probe saw the API server answer again and woke every watch", s.api_returns);
  single("sluice_discovery_credential_reloads_total", Type::counter,
         "credentials re-read (kubeconfig, service account) after a 401", s.credential_reloads);

  // One family per field, a sample per resource labelled resource="...",namespace="...".
  const auto per_resource = [&](const char* name, Type type, const char* help, auto value) {
    out.family(name, type, help);
    for (const auto& r : s.resources) {
      out.sample({{"resource", r.resource}, {"namespace", r.name_space}}, value(r));
    }
  };
  per_resource("sluice_discovery_resource_synced", Type::gauge, "1 when the resource has been listed once",
               [](const ResourceStatus& r) { return r.synced; });
  per_resource("sluice_discovery_resource_absent", Type::gauge, "1 when the resource is not served (CRD missing)",
               [](const ResourceStatus& r) { return r.absent; });
  per_resource("sluice_discovery_resource_connected", Type::gauge, "1 while the watch stream is open",
               [](const ResourceStatus& r) { return r.connected; });
  per_resource("sluice_discovery_resource_stale", Type::gauge, "1 while the resource's data may be behind",
               [](const ResourceStatus& r) { return r.stale; });
  per_resource("sluice_discovery_watch_restarts_total", Type::counter, "watch requests after the first",
               [](const ResourceStatus& r) { return r.watch_restarts; });
  per_resource("sluice_discovery_relists_total", Type::counter, "lists after the first (410 Gone and recoveries)",
               [](const ResourceStatus& r) { return r.relists; });
  per_resource("sluice_discovery_failures_total", Type::counter, "connection, TLS, HTTP or stream failures",
               [](const ResourceStatus& r) { return r.failures; });
  per_resource("sluice_discovery_events_total", Type::counter, "watch events applied",
               [](const ResourceStatus& r) { return r.events; });
  per_resource("sluice_discovery_objects", Type::gauge, "objects held",
               [](const ResourceStatus& r) { return r.objects; });
}

}  // namespace sluice::discovery
