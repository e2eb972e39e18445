#include <algorithm>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "discovery/translate.hpp"

using namespace sluice;
using namespace sluice::discovery;
using nlohmann::json;

namespace {

json service(const std::string& name, const std::string& ns, json ports) {
  return {{"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", "1"}}},
          {"spec", {{"ports", ports}}}};
}

json slice(const std::string& name, const std::string& ns, const std::string& svc, json ports, json endpoints) {
  return {{"metadata", {{"name", name}, {"namespace", ns}, {"labels", {{"kubernetes.io/service-name", svc}}}}},
          {"ports", ports}, {"endpoints", endpoints}};
}

json endpoint(const std::string& ip, bool ready = true, bool serving = true, bool terminating = false) {
  return {{"addresses", {ip}}, {"conditions", {{"ready", ready}, {"serving", serving}, {"terminating", terminating}}}};
}

json import(const std::string& name, const std::string& ns, json endpoints) {
  return {{"metadata", {{"name", name}, {"namespace", ns}}},
          {"spec", {{"type", "ClusterSetIP"}, {"ports", {{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"},
                                                          {"endpoints", endpoints}}}}}}};
}

json target(const std::string& key, const std::string& ip, int port, const std::string& path) {
  return {{"clusterKey", key}, {"target", {{"host", ip}, {"ip", ip}, {"port", port}, {"path", path}}}};
}

const config::Service* find(const Translation& t, const std::string& id) {
  for (const auto& s : t.services)
    if (s.id() == id) return &s;
  return nullptr;
}

const config::ClusterEndpoints* cluster(const config::Service& s, const std::string& key) {
  for (const auto& c : s.clusters)
    if (c.cluster == key) return &c;
  return nullptr;
}

TranslateOptions sidecar(const std::string& local_name = "cluster-2") {
  TranslateOptions o;
  o.local.name = local_name;
  o.sidecar_listeners = {"outbound"};
  return o;
}

}  // namespace

TEST_CASE("local Service and EndpointSlices become local endpoints", "[discovery]") {
  ObjectStore store;
  REQUIRE(store.apply(Kind::service, EventType::added,
                      service("httpbin", "httpbin", {{{"name", "http"}, {"port", 8080}, {"targetPort", 80}}})).empty());
  REQUIRE(store.apply(Kind::endpoint_slice, EventType::added,
                      slice("httpbin-abc", "httpbin", "httpbin", {{{"name", "http"}, {"port", 80}}},
                            {endpoint("10.0.0.1"), endpoint("10.0.0.2", false, true, true),
                             endpoint("10.0.0.3", false, false, false)})).empty());
  auto t = translate(store, sidecar());
  const auto* s = find(t, "httpbin.httpbin");
  REQUIRE(s);
  CHECK(s->ports == std::vector<std::uint16_t>{8080});
  const auto* local = cluster(*s, "default/default/default/cluster-2");
  REQUIRE(local);
  CHECK(local->path_prefix.empty());
  REQUIRE(local->endpoints.size() == 2);  // the not-ready, not-serving one is left out
  CHECK(local->endpoints[0].address == "10.0.0.1");
  CHECK(local->endpoints[0].port == 80);
  CHECK(local->endpoints[0].ready);
  CHECK_FALSE(local->endpoints[0].terminating);
  CHECK(local->endpoints[1].address == "10.0.0.2");
  CHECK_FALSE(local->endpoints[1].ready);
  CHECK(local->endpoints[1].terminating);
}

TEST_CASE("slice ports match by name, then by target port number, and duplicates collapse", "[discovery]") {
  ObjectStore store;
  store.apply(Kind::service, EventType::added,
              service("web", "default", {{{"port", 80}, {"targetPort", 8080}}}));  // unnamed port
  store.apply(Kind::endpoint_slice, EventType::added,
              slice("web-1", "default", "web", {{{"name", "metrics"}, {"port", 9090}}, {{"name", "x"}, {"port", 8080}}},
                    {endpoint("10.1.0.1")}));
  store.apply(Kind::endpoint_slice, EventType::added,
              slice("web-2", "default", "web", {{{"name", "x"}, {"port", 8080}}}, {endpoint("10.1.0.1")}));
  auto t = translate(store, sidecar());
  const auto* s = find(t, "web.default");
  REQUIRE(s);
  const auto* local = cluster(*s, "default/default/default/cluster-2");
  REQUIRE(local);
  REQUIRE(local->endpoints.size() == 1);
  CHECK(local->endpoints[0].port == 8080);
}

TEST_CASE("absent endpoint conditions mean ready", "[discovery]") {
  ObjectStore store;
  store.apply(Kind::service, EventType::added, service("a", "ns", {{{"port", 80}}}));
  store.apply(Kind::endpoint_slice, EventType::added,
              slice("a-1", "ns", "a", {{{"port", 80}}}, {{{"addresses", {"10.2.0.1"}}}}));
  auto t = translate(store, sidecar());
  const auto* local = cluster(*find(t, "a.ns"), "default/default/default/cluster-2");
  REQUIRE(local);
  REQUIRE(local->endpoints.size() == 1);
  CHECK(local->endpoints[0].ready);
}

TEST_CASE("flomesh ServiceImport gives remote gateway endpoints and skips our own cluster", "[discovery]") {
  ObjectStore store;
  REQUIRE(store.apply(Kind::service_import, EventType::added,
                      import("httpbin", "httpbin",
                             {target("default/default/default/cluster-1", "10.0.2.4", 80, "/httpbin"),
                              target("default/default/default/cluster-3", "10.0.2.6", 80, "/httpbin"),
                              target("default/default/default/cluster-2", "10.0.2.5", 80, "/httpbin")}))
              .empty());
  auto t = translate(store, sidecar());
  const auto* s = find(t, "httpbin.httpbin");
  REQUIRE(s);  // known only by its import: still a service (no route would be "Not found" for the wrong reason)
  CHECK(s->ports == std::vector<std::uint16_t>{8080});
  CHECK(s->policy.lb_type == config::LbType::locality);
  REQUIRE(s->clusters.size() == 2);
  const auto* c1 = cluster(*s, "default/default/default/cluster-1");
  REQUIRE(c1);
  CHECK(c1->path_prefix == "/httpbin");
  REQUIRE(c1->endpoints.size() == 1);
  CHECK(c1->endpoints[0].address == "10.0.2.4");
  CHECK(c1->endpoints[0].port == 80);
  CHECK(cluster(*s, "default/default/default/cluster-3"));
  CHECK_FALSE(cluster(*s, "default/default/default/cluster-2"));

  // Sidecar routes answer every name of the service.
  bool found = false;
  for (const auto& r : t.routes) {
    if (r.service != "httpbin.httpbin") continue;
    found = true;
    CHECK(r.listener == "outbound");
    CHECK(r.path == "/");
    for (const char* h : {"httpbin.httpbin", "httpbin.httpbin.svc", "httpbin.httpbin.svc.cluster.local",
                          "httpbin.httpbin.svc.clusterset.local", "httpbin"})
      CHECK(std::find(r.hosts.begin(), r.hosts.end(), h) != r.hosts.end());
  }
  CHECK(found);
}

TEST_CASE("ServiceImport target without ip falls back to host", "[discovery]") {
  ObjectStore store;
  json t = {{"clusterKey", "default/default/default/cluster-1"},
            {"target", {{"host", "gw.cluster-1.example"}, {"port", 8443}, {"path", "/httpbin"}}}};
  REQUIRE(store.apply(Kind::service_import, EventType::added, import("h", "ns", {t})).empty());
  auto tr = translate(store, sidecar());
  CHECK(find(tr, "h.ns")->clusters.at(0).endpoints.at(0).address == "gw.cluster-1.example");
}

TEST_CASE("GlobalTrafficPolicy sets the service policy", "[discovery]") {
  ObjectStore store;
  store.apply(Kind::service_import, EventType::added,
              import("httpbin", "httpbin", {target("default/default/default/cluster-1", "10.0.2.4", 80, "/httpbin")}));
  json gtp = {{"metadata", {{"name", "httpbin"}, {"namespace", "httpbin"}}},
              {"spec", {{"lbType", "ActiveActive"},
                        {"targets", {{{"clusterKey", "default/default/default/cluster-1"}, {"weight", 20}},
                                     {{"clusterKey", "default/default/default/cluster-3"}}}}}}};
  REQUIRE(store.apply(Kind::traffic_policy, EventType::added, gtp).empty());
  auto t = translate(store, sidecar());
  const auto& p = find(t, "httpbin.httpbin")->policy;
  CHECK(p.lb_type == config::LbType::active_active);
  REQUIRE(p.targets.size() == 2);
  CHECK(p.targets[0].cluster == "default/default/default/cluster-1");
  CHECK(p.targets[0].weight == std::optional<std::uint32_t>(20));
  CHECK_FALSE(p.targets[1].weight);

  gtp["spec"]["lbType"] = "FailOver";
  store.apply(Kind::traffic_policy, EventType::modified, gtp);
  CHECK(find(translate(store, sidecar()), "httpbin.httpbin")->policy.lb_type == config::LbType::fail_over);
  store.apply(Kind::traffic_policy, EventType::deleted, gtp);
  CHECK(find(translate(store, sidecar()), "httpbin.httpbin")->policy.lb_type == config::LbType::locality);
}

TEST_CASE("ServiceExport becomes gateway routes with the path stripped, and sets balancing", "[discovery]") {
  ObjectStore store;
  store.apply(Kind::service, EventType::added,
              service("httpbin", "httpbin", {{{"name", "http"}, {"port", 8080}, {"targetPort", 80}},
                                             {{"name", "admin"}, {"port", 9000}, {"targetPort", 90}}}));
  store.apply(Kind::endpoint_slice, EventType::added,
              slice("httpbin-1", "httpbin", "httpbin", {{{"name", "http"}, {"port", 80}}, {{"name", "admin"}, {"port", 90}}},
                    {endpoint("10.3.0.1")}));
  json exp = {{"metadata", {{"name", "httpbin"}, {"namespace", "httpbin"}}},
              {"spec", {{"loadBalancer", "HashingLoadBalancer"}, {"sessionSticky", true},
                        {"rules", {{{"portNumber", 9000}, {"path", "/admin"}, {"pathType", "Exact"}},
                                   {{"portNumber", 9000}, {"path", "/httpbin"}, {"pathType", "Prefix"}}}}}}};
  REQUIRE(store.apply(Kind::service_export, EventType::added, exp).empty());
  TranslateOptions o;
  o.local.name = "cluster-1";
  o.gateway_listeners = {"gateway"};
  auto t = translate(store, o);
  const auto* s = find(t, "httpbin.httpbin");
  REQUIRE(s);
  CHECK(s->load_balancer == config::LoadBalancer::hashing);
  CHECK(s->session_sticky.enabled);
  // The exported port picks the endpoints' port.
  CHECK(s->clusters.at(0).endpoints.at(0).port == 90);
  REQUIRE(t.routes.size() == 2);  // no sidecar listeners: only the export's rules
  const auto& r = t.routes[0];     // longest path first
  CHECK(r.listener == "gateway");
  CHECK(r.hosts == std::vector<std::string>{"*"});
  CHECK(r.path == "/httpbin");
  CHECK(r.path_match == config::PathMatch::prefix);
  CHECK(r.service == "httpbin.httpbin");
  CHECK(r.rewrite_from == "/httpbin");
  CHECK(r.rewrite_to == "/");
  CHECK(t.routes[1].path == "/admin");
  CHECK(t.routes[1].path_match == config::PathMatch::exact);

  exp["spec"]["pathRewrite"] = {{"from", "^/httpbin"}, {"to", "/v2"}};
  store.apply(Kind::service_export, EventType::modified, exp);
  t = translate(store, o);
  CHECK(t.routes[0].rewrite_from == "/httpbin");
  CHECK(t.routes[0].rewrite_to == "/v2");
}

TEST_CASE("MCS ServiceImport with labelled EndpointSlices gives endpoints per source cluster", "[discovery]") {
  ObjectStore store;
  json imp = {{"metadata", {{"name", "api"}, {"namespace", "shop"}}},
              {"spec", {{"type", "ClusterSetIP"}, {"ports", {{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}}}}}}};
  REQUIRE(store.apply(Kind::mcs_service_import, EventType::added, imp).empty());
  auto mcs_slice = [](const std::string& name, const std::string& cluster, const std::string& ip) {
    return json{{"metadata", {{"name", name}, {"namespace", "shop"},
                              {"labels", {{"multicluster.kubernetes.io/service-name", "api"},
                                          {"multicluster.kubernetes.io/source-cluster", cluster}}}}},
                {"ports", {{{"name", "http"}, {"port", 8080}}}},
                {"endpoints", {endpoint(ip)}}};
  };
  store.apply(Kind::endpoint_slice, EventType::added, mcs_slice("api-c1", "cluster-1", "10.9.0.1"));
  store.apply(Kind::endpoint_slice, EventType::added, mcs_slice("api-c2", "cluster-2", "10.9.0.2"));
  auto t = translate(store, sidecar("cluster-2"));
  const auto* s = find(t, "api.shop");
  REQUIRE(s);
  REQUIRE(s->clusters.size() == 1);  // cluster-2's own slice is ours
  CHECK(s->clusters[0].cluster == "default/default/default/cluster-1");
  CHECK(s->clusters[0].endpoints.at(0).address == "10.9.0.1");
  CHECK(s->clusters[0].endpoints.at(0).port == 8080);
}

TEST_CASE("bare service name goes to the home namespace, else only when unique", "[discovery]") {
  ObjectStore store;
  store.apply(Kind::service, EventType::added, service("web", "default", {{{"port", 80}}}));
  store.apply(Kind::service, EventType::added, service("web", "other", {{{"port", 80}}}));
  store.apply(Kind::service, EventType::added, service("db", "other", {{{"port", 5432}}}));
  auto t = translate(store, sidecar());
  auto hosts_of = [&](const std::string& id) {
    for (const auto& r : t.routes)
      if (r.service == id) return r.hosts;
    return std::vector<std::string>{};
  };
  auto has = [](const std::vector<std::string>& v, const char* h) { return std::find(v.begin(), v.end(), h) != v.end(); };
  CHECK(has(hosts_of("web.default"), "web"));
  CHECK_FALSE(has(hosts_of("web.other"), "web"));
  CHECK(has(hosts_of("db.other"), "db"));
}

TEST_CASE("malformed objects are skipped with an error naming object and field", "[discovery]") {
  ObjectStore store;
  auto bad_port = service("bad", "ns", {{{"name", "http"}, {"port", 70000}}});
  auto e = store.apply(Kind::service, EventType::added, bad_port);
  CHECK(e.find("Service ns/bad") != std::string::npos);
  CHECK(e.find("spec.ports[0].port") != std::string::npos);
  CHECK(e.find("70000") != std::string::npos);
  CHECK(store.count(Kind::service) == 0);

  auto bad_import = import("imp", "ns", {{{"clusterKey", "r/z/g/k"}, {"target", {{"ip", "1.2.3.4"}, {"port", "80"}}}}});
  e = store.apply(Kind::service_import, EventType::added, bad_import);
  CHECK(e.find("spec.ports[0].endpoints[0].target.port") != std::string::npos);

  // Found by tests/fuzz/fuzz_kubernetes: what the routing model could not hold is refused here.
  auto bad_key = import("imp", "ns", {{{"clusterKey", "a/b/c/d/e"}, {"target", {{"ip", "1.2.3.4"}, {"port", 80}}}}});
  e = store.apply(Kind::service_import, EventType::added, bad_key);
  CHECK(e.find("spec.ports[0].endpoints[0].clusterKey: expected a cluster key") != std::string::npos);
  for (const char* path : {"httpbin", "/httpbin/", "//"}) {
    auto bad_path = import("imp", "ns", json::array({target("r/z/g/k", "1.2.3.4", 80, path)}));
    e = store.apply(Kind::service_import, EventType::added, bad_path);
    CHECK(e.find("spec.ports[0].endpoints[0].target.path: expected a path like /httpbin") != std::string::npos);
  }
  json no_namespace = {{"metadata", {{"name", "x"}}}, {"spec", {{"lbType", "ActiveActive"}}}};
  CHECK(store.apply(Kind::traffic_policy, EventType::added, no_namespace).find("metadata.namespace") !=
        std::string::npos);
  json dotted = service("a.b", "ns", {{{"name", "http"}, {"port", 80}}});
  CHECK(store.apply(Kind::service, EventType::added, dotted).find("metadata.name") != std::string::npos);
  json bad_target = {{"metadata", {{"name", "x"}, {"namespace", "ns"}}},
                     {"spec", {{"lbType", "ActiveActive"}, {"targets", {{{"clusterKey", "cluster-1"}}}}}}};
  CHECK(store.apply(Kind::traffic_policy, EventType::added, bad_target).find("spec.targets[0].clusterKey") !=
        std::string::npos);
  json twice = {{"metadata", {{"name", "x"}, {"namespace", "ns"}}},
                {"spec", {{"lbType", "FailOver"}, {"targets", {{{"clusterKey", "r/z/g/c1"}}, {{"clusterKey", "r/z/g/c1"}}}}}}};
  CHECK(store.apply(Kind::traffic_policy, EventType::added, twice).find("spec.targets[1].clusterKey: duplicate") !=
        std::string::npos);
  json zero = {{"metadata", {{"name", "x"}, {"namespace", "ns"}}},
               {"spec", {{"lbType", "ActiveActive"}, {"targets", {{{"clusterKey", "r/z/g/c1"}, {"weight", 0}}}}}}};
  CHECK(store.apply(Kind::traffic_policy, EventType::added, zero).find("spec.targets[0].weight: expected an integer 1..") !=
        std::string::npos);
  CHECK(store.count(Kind::service_import) == 0);
  CHECK(store.count(Kind::service) == 0);
  CHECK(store.count(Kind::traffic_policy) == 0);

  json no_meta = {{"spec", json::object()}};
  CHECK(store.apply(Kind::traffic_policy, EventType::added, no_meta).find("metadata") != std::string::npos);
  json bad_lb = {{"metadata", {{"name", "x"}, {"namespace", "ns"}}}, {"spec", {{"lbType", "Random"}}}};
  CHECK(store.apply(Kind::traffic_policy, EventType::added, bad_lb).find("spec.lbType") != std::string::npos);
  json wrong_type = {{"metadata", {{"name", "x"}, {"namespace", "ns"}}}, {"ports", "all"}, {"endpoints", json::array()}};
  CHECK(store.apply(Kind::endpoint_slice, EventType::added, wrong_type).find("ports: expected an array") != std::string::npos);
  // ServiceExport takes ErieCanal's spellings only (config/text.hpp's table): not the config's own.
  json config_spelling = {{"metadata", {{"name", "x"}, {"namespace", "ns"}}},
                          {"spec", {{"loadBalancer", "Random"}, {"rules", {{{"portNumber", 80}}}}}}};
  CHECK(store.apply(Kind::service_export, EventType::added, config_spelling).find("spec.loadBalancer: unknown load balancer 'Random'") !=
        std::string::npos);
  config_spelling["spec"]["loadBalancer"] = "LeastWorkLoadBalancer";
  config_spelling["spec"]["rules"][0]["pathType"] = "exact";
  CHECK(store.apply(Kind::service_export, EventType::added, config_spelling).find("spec.rules[0].pathType") !=
        std::string::npos);
  json no_rules = {{"metadata", {{"name", "x"}, {"namespace", "ns"}}}, {"spec", json::object()}};
  CHECK(store.apply(Kind::service_export, EventType::added, no_rules).find("spec.rules") != std::string::npos);

  // A good neighbour keeps routing.
  store.apply(Kind::service, EventType::added, service("good", "ns", {{{"port", 80}}}));
  auto t = translate(store, sidecar());
  CHECK(find(t, "good.ns"));
  CHECK_FALSE(find(t, "bad.ns"));
}

TEST_CASE("a malformed update keeps the previous version; delete and relist remove objects", "[discovery]") {
  ObjectStore store;
  store.apply(Kind::service, EventType::added, service("a", "ns1", {{{"port", 80}}}));
  store.apply(Kind::service, EventType::added, service("b", "ns2", {{{"port", 80}}}));
  auto e = store.apply(Kind::service, EventType::modified, service("a", "ns1", {{{"port", -1}}}));
  CHECK(e.find("keeping its previous version") != std::string::npos);
  CHECK(store.services().at("ns1/a").ports.at(0).port == 80);

  // A relist of ns1 only replaces ns1.
  auto errors = store.replace(Kind::service, "ns1", json::array({service("c", "ns1", {{{"port", 81}}})}));
  CHECK(errors.empty());
  CHECK(store.services().count("ns1/a") == 0);
  CHECK(store.services().count("ns1/c") == 1);
  CHECK(store.services().count("ns2/b") == 1);
  // Cluster-wide relist replaces everything.
  store.replace(Kind::service, "", json::array());
  CHECK(store.count(Kind::service) == 0);

  store.apply(Kind::service, EventType::added, service("d", "ns1", {{{"port", 80}}}));
  store.apply(Kind::service, EventType::deleted, {{"metadata", {{"name", "d"}, {"namespace", "ns1"}}}});
  CHECK(store.count(Kind::service) == 0);
}
