// Sluice configuration: plain structs with in-class defaults.
//
// The JSON schema is documented in config/README.md. Defaults follow Envoy
// (limits, timeouts, outlier detection) unless a comment says otherwise.
// These structs are also the "routing model input": discovery sources
// (static file, Kubernetes) produce `services` and `routes` in this shape and
// routing builds its snapshot from them. This header knows nothing else.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sluice::config {

using std::chrono::milliseconds;

// The local cluster's identity. Its key is "region/zone/group/name".
struct ClusterIdentity {
  std::string region = "default";
  std::string zone = "default";
  std::string group = "default";
  std::string name = "local";

  std::string key() const { return region + "/" + zone + "/" + group + "/" + name; }
};

enum class Role { standalone, sidecar, gateway };

struct TlsServer {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;  // non-empty: require and verify client certificates (mTLS)
};

struct Listener {
  std::string name;
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  Role role = Role::standalone;
  std::optional<TlsServer> tls;
};

struct Endpoint {
  std::string address;  // IP literal or host name
  std::uint16_t port = 0;
  std::uint32_t weight = 1;
  bool ready = true;        // EndpointSlice conditions.ready
  bool terminating = false; // serving but terminating: used only when nothing else is left
};

// Upstream TLS towards a remote cluster's gateway.
struct TlsClient {
  std::string ca_file;      // verify the peer against this CA bundle
  std::string cert_file;    // client certificate (mTLS), optional
  std::string key_file;
  std::string server_name;  // SNI and name verification; empty: the endpoint host
};

// How requests are spoken to a cluster's endpoints: HTTP/1.1; HTTP/2 with prior knowledge over plain TCP
// (h2c); HTTP/2 over TLS, ALPN "h2" required (h2); over TLS, whatever ALPN picks of h2 and http/1.1 (auto).
enum class UpstreamProtocol { http1, h2c, h2, auto_alpn };

// The endpoints of one service in one cluster. For the local cluster these
// are pods; for a remote cluster they are that cluster's gateway(s), reached
// with `path_prefix` prepended to the request path (the export's path).
struct ClusterEndpoints {
  std::string cluster;            // cluster key region/zone/group/name
  std::string path_prefix;        // e.g. "/httpbin" for a remote gateway; empty for local pods
  std::vector<Endpoint> endpoints;
  std::optional<TlsClient> tls;
  UpstreamProtocol protocol = UpstreamProtocol::http1;  // JSON "protocol"
};

enum class LoadBalancer { round_robin, random, least_work, hashing };
enum class HashOn { client_address, header, cookie };

struct HashPolicy {
  HashOn on = HashOn::client_address;
  std::string name;  // header or cookie name
};

// ErieCanal sessionSticky: a cookie pins a client to its endpoint while healthy.
struct SessionSticky {
  bool enabled = false;
  std::string cookie = "sluice-sticky";
  milliseconds ttl{0};  // 0: session cookie
};

enum class LbType { locality, active_active, fail_over };

struct PolicyTarget {
  std::string cluster;           // cluster key
  std::optional<std::uint32_t> weight;
};

// ErieCanal GlobalTrafficPolicy.
struct TrafficPolicy {
  LbType lb_type = LbType::locality;
  std::vector<PolicyTarget> targets;
  // FailOver: a tier keeps all its traffic while healthy_share * overprovisioning >= 1
  // (Envoy's default 1.4, i.e. >= ~72% healthy). 0 = ErieCanal's all-or-nothing.
  double overprovisioning = 1.4;
  // Envoy's healthy panic threshold: below this share healthy, a tier balances over all its endpoints.
  double panic_threshold = 0.5;
  // Non-empty: a multi-cluster policy plugin registered under this name (routing/plugins.hpp) places the
  // clusters into tiers instead of lb_type; lb_type and targets are still passed to it.
  std::string plugin;
};

// Passive outlier detection (routing/README.md, "Endpoint health"). Three counts of consecutive failures,
// each with its own threshold, because they mean different things:
// - local-origin failures (connect refused or timed out, connection reset before any response byte) are
//   the proxy's own observation that the endpoint is not there: nginx takes an upstream out after one.
//   Such an ejection is never capped, and panic never sends traffic back to it.
// - gateway failures (502, 503, 504, response timeouts): Envoy's consecutive_gateway_failure.
// - any 5xx: Envoy's consecutive_5xx.
// The last two are opinions about a live endpoint (a correlated false alarm can hit them all), so they are
// capped by max_ejection_percent and undone by panic.
// An ejected endpoint comes back when a probe succeeds: a connect (TLS handshake included) after a
// local-origin ejection, an HTTP request after the others (the health check where one is configured).
struct OutlierDetection {
  bool enabled = true;
  std::uint32_t consecutive_local_origin_failures = 1;  // nginx max_fails 1
  std::uint32_t consecutive_gateway_failures = 3;
  std::uint32_t consecutive_failures = 5;         // any 5xx; Envoy consecutive_5xx default
  milliseconds probe_interval{250};               // first probe after an ejection; doubles per failed probe
  milliseconds max_probe_interval{1000};          // ... up to this (both times 2^damping for a flapping endpoint)
  // Backstop, for a program that embeds routing without the proxy's prober: an ejection that no probe
  // ends lasts base_ejection_time x ejection count, at most max_ejection_time (Envoy's rule). A failed
  // probe pushes it back.
  milliseconds base_ejection_time{30000};
  milliseconds max_ejection_time{300000};
  // Ejections on 5xx and gateway failures leave at least (100 - this)% of the service's reachable
  // endpoints in rotation (at least one may go); a cluster whose every endpoint fails goes as a whole.
  double max_ejection_percent = 50;
};

struct HealthCheck {
  bool enabled = false;
  std::string path = "/";
  milliseconds interval{5000};
  milliseconds timeout{1000};
  std::uint32_t healthy_threshold = 2;
  std::uint32_t unhealthy_threshold = 3;
  double jitter = 0.1;  // share of the interval added at random
};

struct RetryPolicy {
  std::uint32_t max_retries = 2;
  double budget_percent = 20;      // retries at most this share of active requests
  std::uint32_t min_retry_concurrency = 3;  // Envoy: the budget always allows this many
  bool retry_on_5xx = true;        // 502/503/504 for idempotent methods
  bool retry_on_timeout = true;    // a response timeout, for idempotent methods (nginx proxy_next_upstream timeout)
  std::uint32_t max_pending_per_endpoint = 1024;  // circuit limit
};

// Upgraded connections (WebSocket, any HTTP/1.1 Upgrade) once the endpoint answered 101: a two-way byte
// tunnel that the request timeouts no longer govern.
struct Tunnel {
  milliseconds idle_timeout{3600000};  // no byte either way for this long closes it (HAProxy timeout tunnel 1 h)
  milliseconds max_lifetime{0};        // > 0: closed after this long whatever the traffic (drain old endpoints)
};

struct Service {
  std::string name;
  std::string name_space = "default";  // JSON "namespace"
  std::vector<std::uint16_t> ports;
  std::vector<ClusterEndpoints> clusters;
  LoadBalancer load_balancer = LoadBalancer::round_robin;
  // Non-empty: a load-balancing policy plugin registered under this name (routing/plugins.hpp) picks
  // within a tier instead of load_balancer.
  std::string load_balancer_plugin;
  HashPolicy hash;
  SessionSticky session_sticky;
  TrafficPolicy policy;
  OutlierDetection outlier_detection;
  HealthCheck health_check;
  RetryPolicy retry;
  Tunnel tunnel;
  milliseconds slow_start_window{10000};

  std::string id() const { return name + "." + name_space; }
};

enum class PathMatch { prefix, exact };

struct Route {
  std::string listener;               // empty: every listener
  std::vector<std::string> hosts;     // "*" matches any host; matched with and without port
  std::string path = "/";
  PathMatch path_match = PathMatch::prefix;  // prefix is element-wise: /foo matches /foo/bar, not /foobar
  std::string service;                // "name.namespace"
  std::string host_rewrite;           // non-empty: Host sent upstream
  std::string rewrite_from;           // ServiceExport pathRewrite: regex-free prefix replacement
  std::string rewrite_to;
};

struct Limits {
  std::uint32_t max_request_header_bytes = 60 * 1024;  // Envoy max_request_headers_kb 60
  std::uint32_t max_request_headers = 100;             // Envoy max_headers_count 100
  std::uint32_t max_response_header_bytes = 60 * 1024;
  std::uint32_t max_tunnels = 10000;  // upgraded connections open at once, all workers; beyond it 503
  // Downstream connections open at once on one worker, all its listeners together (nginx worker_connections,
  // HAProxy maxconn): at the limit the worker stops accepting until one of them closes, so new clients wait
  // in the kernel's backlog instead of costing memory and descriptors. 10000 * ~9 KiB per idle connection
  // (measured: tests/bench/README.md, flood) is ~90 MiB per worker.
  std::uint32_t max_connections_per_worker = 10000;
  // Requests in flight at once on one worker (HTTP/1.1 requests and HTTP/2 streams): one more is answered 503
  // with Retry-After. Each holds an upstream connection and up to two 64 KiB relay buffers: 4096 of them are
  // ~0.5 GiB and 4096 descriptors at worst.
  std::uint32_t max_requests_per_worker = 4096;
};

struct Timeouts {
  milliseconds request_header{10000};  // slowloris guard (Envoy request_headers_timeout is off by default; nginx 60s)
  milliseconds idle{60000};            // downstream keep-alive idle
  milliseconds connect{2000};
  milliseconds response{15000};        // per attempt (Envoy route timeout 15 s); an idempotent request is retried
  // An HTTP/2 stream, once its head came, on which neither side moved a byte for this long is ended
  // (RST_STREAM, or 408 / DEADLINE_EXCEEDED before any response). Envoy's stream_idle_timeout 5 min.
  milliseconds stream_idle{300000};
  milliseconds drain{10000};
};

struct UpstreamPool {
  std::uint32_t max_idle_per_endpoint = 1024;
  milliseconds idle_timeout{60000};
};

struct Admin {
  bool enabled = true;
  std::string address = "127.0.0.1";
  std::uint16_t port = 9901;  // Envoy's customary admin port
};

struct AccessLog {
  bool enabled = false;
  std::string path;  // empty or "-": stdout
};

struct Kubernetes {
  bool enabled = false;
  std::string kubeconfig;      // empty: in-cluster, then $KUBECONFIG, then ~/.kube/config
  std::string context;
  std::vector<std::string> namespaces;  // empty: cluster-wide
  milliseconds coalesce{50};   // burst of events -> one rebuild
};

// Between clusters, mTLS is one switch: gateway-role listeners without their
// own `tls` terminate TLS with cert/key and require client certificates signed
// by ca_file; connections to a remote cluster's endpoints without their own
// `tls` use TLS with the same certificate, verifying the peer against ca_file
// (name: the endpoint's host).
struct MeshTls {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

struct Config {
  static constexpr std::uint32_t max_workers = 1024;

  ClusterIdentity cluster;
  std::uint32_t workers = 0;   // 0: one per core; at most max_workers
  std::string log_level = "info";
  Limits limits;
  Timeouts timeouts;
  UpstreamPool upstream;
  Admin admin;
  AccessLog access_log;
  Kubernetes kubernetes;
  // Discovery sources by name, each publishing routing merged over the config's own: the built-in
  // "kubernetes" (the "kubernetes" object's enabled: true selects it too) or one a program embedding
  // libsluice registered (sluice::register_source). The sluice binary knows "kubernetes" only.
  std::vector<std::string> sources;
  std::vector<Listener> listeners;
  std::vector<Service> services;
  std::vector<Route> routes;
  std::optional<MeshTls> mesh_tls;  // JSON "mesh_tls"; absent: plain HTTP between clusters
};

}  // namespace sluice::config
