#include <catch2/catch.hpp>

#include "config/config.hpp"
#include "discovery/from_config.hpp"
#include "discovery/status.hpp"
#include "prometheus/writer.hpp"

using namespace sluice;
using namespace sluice::discovery;

TEST_CASE("status renders as Prometheus text with per-resource labels", "[discovery]") {
  Status s;
  s.has_synced_once = true;
  s.stale = true;
  s.publishes = 7;
  ResourceStatus r;
  r.resource = "serviceimports.flomesh.io";
  r.name_space = "httpbin";
  r.synced = true;
  r.watch_restarts = 3;
  r.relists = 1;
  s.resources.push_back(r);
  s.last_publish_latency = std::chrono::microseconds(5300);
  std::string text;
  prometheus::Writer writer(text);
  render_prometheus(s, writer);
  CHECK(text.find("sluice_discovery_synced 1\n") != std::string::npos);
  CHECK(text.find("sluice_discovery_stale 1\n") != std::string::npos);
  CHECK(text.find("sluice_discovery_publishes_total 7\n") != std::string::npos);
  CHECK(text.find("# TYPE sluice_discovery_watch_restarts_total counter\n") != std::string::npos);
  CHECK(text.find("sluice_discovery_watch_restarts_total{resource=\"serviceimports.flomesh.io\",namespace=\"httpbin\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("sluice_discovery_relists_total{resource=\"serviceimports.flomesh.io\",namespace=\"httpbin\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("sluice_discovery_last_publish_latency_seconds 0.0053\n") != std::string::npos);
}

TEST_CASE("status label values from Kubernetes are escaped", "[discovery]") {
  Status s;
  ResourceStatus r;
  r.resource = "services";
  r.name_space = "we\"ird\\ns\n";
  s.resources.push_back(r);
  std::string text;
  prometheus::Writer writer(text);
  render_prometheus(s, writer);
  CHECK(text.find("sluice_discovery_objects{resource=\"services\",namespace=\"we\\\"ird\\\\ns\\n\"} 0\n") !=
        std::string::npos);
}

TEST_CASE("options and the static base come from the configuration", "[discovery]") {
  config::Config c;
  c.cluster.name = "cluster-2";
  c.kubernetes.kubeconfig = "/k";
  c.kubernetes.namespaces = {"a", "b"};
  c.kubernetes.coalesce = std::chrono::milliseconds(5);
  c.listeners.push_back({"out", "127.0.0.1", 15001, config::Role::sidecar, std::nullopt});
  c.listeners.push_back({"gw", "127.0.0.1", 18082, config::Role::gateway, std::nullopt});
  c.listeners.push_back({"plain", "127.0.0.1", 8000, config::Role::standalone, std::nullopt});
  config::Service svc;
  svc.name = "x";
  c.services.push_back(svc);
  auto o = kube_options_from(c);
  CHECK(o.kubeconfig == "/k");
  CHECK(o.namespaces == std::vector<std::string>{"a", "b"});
  CHECK(o.coalesce == std::chrono::milliseconds(5));
  CHECK(o.sidecar_listeners == std::vector<std::string>{"out"});
  CHECK(o.gateway_listeners == std::vector<std::string>{"gw"});
  // Defaults pinned.
  KubeOptions d;
  CHECK(d.coalesce == std::chrono::milliseconds(50));
  CHECK(d.list_page_size == 500);
  CHECK(d.absent_retry == std::chrono::seconds(30));
  CHECK(d.watch_timeout == std::chrono::seconds(300));
  auto m = static_model(c);
  CHECK(m.local.key() == "default/default/default/cluster-2");
  CHECK(m.services.size() == 1);
}
