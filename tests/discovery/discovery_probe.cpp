// Test driver: runs a KubernetesSource against a kubeconfig (or in-cluster env) and prints every
// published Model as one JSON line on stdout: {"kind":"model","t_us":...,"stale":...,"services":[...],
// "routes":[...],"status":{...}}. With --status-ms N, a {"kind":"status",...} line every N ms as well.
// Log lines go to stderr. Exit 1 with the error on stderr when start() fails. SIGTERM/SIGINT stop it.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include <boost/asio/post.hpp>

#include "config/text.hpp"
#include "discovery/kubernetes_source.hpp"
#include "routing/publisher.hpp"
#include "routing/registry.hpp"
#include "routing/table.hpp"

using namespace sluice;
using nlohmann::json;

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch()).count();
}

json status_json(const discovery::Status& s) {
  json j = {{"synced", s.has_synced_once}, {"stale", s.stale}, {"publishes", s.publishes},
            {"malformed", s.malformed_objects}, {"origin", s.origin}, {"api_probes", s.api_probes},
            {"api_returns", s.api_returns}, {"credential_reloads", s.credential_reloads},
            {"resources", json::array()}};
  for (const auto& r : s.resources)
    j["resources"].push_back({{"resource", r.resource}, {"namespace", r.name_space}, {"synced", r.synced},
                              {"absent", r.absent}, {"connected", r.connected}, {"stale", r.stale},
                              {"watch_restarts", r.watch_restarts}, {"relists", r.relists},
                              {"failures", r.failures}, {"events", r.events}, {"objects", r.objects},
                              {"last_error", r.last_error}});
  return j;
}

json model_json(const routing::Model& m) {
  json services = json::array();
  for (const auto& s : m.services) {
    json clusters = json::array();
    for (const auto& c : s.clusters) {
      json eps = json::array();
      for (const auto& e : c.endpoints)
        eps.push_back({{"address", e.address}, {"port", e.port}, {"ready", e.ready}, {"terminating", e.terminating}});
      clusters.push_back({{"cluster", c.cluster}, {"path_prefix", c.path_prefix}, {"endpoints", eps}});
    }
    json targets = json::array();
    for (const auto& t : s.policy.targets) {
      json tj = {{"cluster", t.cluster}};
      if (t.weight) tj["weight"] = *t.weight;
      targets.push_back(tj);
    }
    services.push_back({{"id", s.id()}, {"ports", s.ports}, {"clusters", clusters},
                        {"lb_type", config::to_string(s.policy.lb_type)}, {"targets", targets},
                        {"load_balancer", config::to_string(s.load_balancer)}, {"sticky", s.session_sticky.enabled}});
  }
  json routes = json::array();
  for (const auto& r : m.routes)
    routes.push_back({{"listener", r.listener}, {"hosts", r.hosts}, {"path", r.path},
                      {"match", r.path_match == config::PathMatch::exact ? "exact" : "prefix"},
                      {"service", r.service}, {"rewrite_from", r.rewrite_from}, {"rewrite_to", r.rewrite_to}});
  return {{"stale", m.stale}, {"source", m.source}, {"services", services}, {"routes", routes}};
}

void usage() {
  std::fprintf(stderr,
               "usage: discovery_probe [--kubeconfig F] [--context C] [--namespace N]... [--cluster NAME]\n"
               "  [--sidecar-listener L]... [--gateway-listener L]... [--coalesce-ms N] [--in-cluster-dir D]\n"
               "  [--watch-timeout-s N] [--status-ms N] [--compact] [--routable]\n");
}

}  // namespace

int main(int argc, char** argv) {
  discovery::KubeOptions options;
  config::ClusterIdentity local;
  int status_ms = 0;
  bool compact = false;  // --compact: print only counts and the status (benchmarks with 1k services)
  bool routable = false; // --routable: the sink builds and publishes a routing snapshot, as a proxy does (embed/inputs.cpp)
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--kubeconfig") options.kubeconfig = value();
    else if (a == "--context") options.context = value();
    else if (a == "--namespace") options.namespaces.push_back(value());
    else if (a == "--cluster") local.name = value();
    else if (a == "--sidecar-listener") options.sidecar_listeners.push_back(value());
    else if (a == "--gateway-listener") options.gateway_listeners.push_back(value());
    else if (a == "--coalesce-ms") options.coalesce = std::chrono::milliseconds(std::stoi(value()));
    else if (a == "--in-cluster-dir") options.in_cluster_dir = value();
    else if (a == "--watch-timeout-s") {
      options.watch_timeout = std::chrono::seconds(std::stoi(value()));
      options.watch_timeout_jitter = std::chrono::seconds(0);
    } else if (a == "--status-ms") status_ms = std::stoi(value());
    else if (a == "--compact") compact = true;
    else if (a == "--routable") routable = true;
    else {
      usage();
      return 2;
    }
  }
  // Discovery logs through log/logger.hpp: info and above to stderr, which tests/discovery/probe.py reads.

  boost::asio::io_context ioc;
  discovery::KubernetesSource* source_ptr = nullptr;
  routing::Table table;
  routing::EndpointRegistry registry;
  routing::Publisher publisher(table, registry);
  discovery::KubernetesSource source(ioc, options, local, [&](routing::Model m) {
    if (routable) {
      // Discovery already coalesced the burst: build and publish right away, as a proxy does (embed/inputs.cpp).
      publisher.submit(m);
      publisher.flush();
      // After rebuild() returns, the source knows how long event -> routable took.
      boost::asio::post(ioc, [&] {
        json l = {{"kind", "latency"}, {"us", source_ptr->status().last_publish_latency.count()},
                  {"generation", table.generation()}};
        std::cout << l.dump() << std::endl;
      });
    }
    json line;
    if (compact) {
      std::size_t endpoints = 0;
      for (const auto& s : m.services)
        for (const auto& c : s.clusters) endpoints += c.endpoints.size();
      line = {{"stale", m.stale}, {"services", m.services.size()}, {"routes", m.routes.size()},
              {"endpoints", endpoints}};
    } else {
      line = model_json(m);
    }
    line["kind"] = "model";
    line["t_us"] = now_us();
    line["status"] = status_json(source_ptr->status());
    std::cout << line.dump() << std::endl;
  });
  source_ptr = &source;
  if (auto error = source.start(); !error.empty()) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 1;
  }
  boost::asio::signal_set signals(ioc, SIGINT, SIGTERM);
  boost::asio::steady_timer status_timer(ioc);
  signals.async_wait([&](boost::system::error_code, int) {
    source.stop();
    status_timer.cancel();
  });
  std::function<void()> tick = [&] {
    status_timer.expires_after(std::chrono::milliseconds(status_ms));
    status_timer.async_wait([&](boost::system::error_code ec) {
      if (ec) return;
      json line = {{"kind", "status"}, {"t_us", now_us()}, {"status", status_json(source.status())}};
      std::cout << line.dump() << std::endl;
      tick();
    });
  };
  if (status_ms > 0) tick();
  ioc.run();
  return 0;
}
