#include <catch2/catch.hpp>

#include "fixtures.hpp"
#include "routing/matcher.hpp"

using namespace sluice;
using namespace sluice::routing;
using namespace sluice::routing::test;

namespace {

std::string routed(Harness& h, std::string_view host, std::string_view target, std::string_view listener = "main") {
  auto snap = h.table.load();
  const RouteEntry* r = match_route(*snap, listener, host, target);
  return r ? r->service_id + r->path : "none";
}

Model routes_model() {
  std::vector<config::Service> svcs{service("a", {cluster(kLocal, endpoints(1))}),
                                    service("b", {cluster(kLocal, endpoints(1))}),
                                    service("c", {cluster(kLocal, endpoints(1))}),
                                    service("d", {cluster(kLocal, endpoints(1))})};
  std::vector<config::Route> routes{
      route({"httpbin.httpbin", "HttpBin"}, "a.default"),
      route({"httpbin.httpbin"}, "b.default", "/api"),
      route({"httpbin.httpbin"}, "c.default", "/api/v2"),
      route({"httpbin.httpbin:9090"}, "d.default"),
      route({"*"}, "d.default", "/wild"),
      route({"exact.example"}, "c.default", "/only", config::PathMatch::exact),
  };
  auto listener_only = route({"l.example"}, "b.default");
  listener_only.listener = "admin";
  routes.push_back(listener_only);
  return model_of(svcs, routes);
}

}  // namespace

TEST_CASE("path prefix matching is element-wise", "[routing]") {
  CHECK(path_matches("/foo", false, "/foo"));
  CHECK(path_matches("/foo", false, "/foo/bar"));
  CHECK_FALSE(path_matches("/foo", false, "/foobar"));
  CHECK(path_matches("/foo/", false, "/foo/bar"));
  CHECK(path_matches("/", false, "/anything"));
  CHECK(path_matches("/foo", true, "/foo"));
  CHECK_FALSE(path_matches("/foo", true, "/foo/"));
  CHECK(path_of("/foo?x=/bar") == "/foo");
  CHECK(strip_port("Host:80") == "Host");
  CHECK(strip_port("[::1]:80") == "[::1]");
  CHECK(strip_port("[::1]") == "[::1]");
  CHECK(strip_port("::1") == "::1");
}

TEST_CASE("route precedence: longer path first, exact before prefix at equal length", "[routing]") {
  const auto r = [](std::string path, config::PathMatch match) {
    config::Route route;
    route.path = std::move(path);
    route.path_match = match;
    return route;
  };
  using config::PathMatch;
  CHECK(ranks_before(r("/api/v2", PathMatch::prefix), r("/api", PathMatch::exact)));
  CHECK_FALSE(ranks_before(r("/api", PathMatch::exact), r("/api/v2", PathMatch::prefix)));
  CHECK(ranks_before(r("/api", PathMatch::exact), r("/api", PathMatch::prefix)));
  CHECK_FALSE(ranks_before(r("/api", PathMatch::prefix), r("/api", PathMatch::exact)));
  // Neither before the other: list order decides.
  CHECK_FALSE(ranks_before(r("/a", PathMatch::prefix), r("/b", PathMatch::prefix)));
  CHECK_FALSE(ranks_before(r("/b", PathMatch::prefix), r("/a", PathMatch::prefix)));
}

TEST_CASE("routes match host case-insensitively, with and without port, longest path first", "[routing]") {
  Harness h(routes_model());
  CHECK(routed(h, "httpbin.httpbin", "/") == "a.default/");
  CHECK(routed(h, "HTTPBIN.httpbin:8080", "/get") == "a.default/");
  CHECK(routed(h, "httpbin", "/x") == "a.default/");
  CHECK(routed(h, "httpbin.httpbin", "/api") == "b.default/api");
  CHECK(routed(h, "httpbin.httpbin", "/api/x?q=1") == "b.default/api");
  CHECK(routed(h, "httpbin.httpbin", "/apix") == "a.default/");
  CHECK(routed(h, "httpbin.httpbin", "/api/v2/items") == "c.default/api/v2");
  // A route host with a port matches only that port, and wins over the bare host.
  CHECK(routed(h, "httpbin.httpbin:9090", "/api") == "d.default/");
  // Wildcard only when no host-specific route matches.
  CHECK(routed(h, "other", "/wild/1") == "d.default/wild");
  CHECK(routed(h, "other", "/") == "none");
  CHECK(routed(h, "exact.example", "/only?x") == "c.default/only");
  CHECK(routed(h, "exact.example", "/only/more") == "none");
  // Listener-bound routes.
  CHECK(routed(h, "l.example", "/", "admin") == "b.default/");
  CHECK(routed(h, "l.example", "/", "main") == "none");
}

TEST_CASE("upstream target applies rewrite and cluster prefix", "[routing]") {
  RouteEntry r;
  std::string out;
  upstream_target(r, "", "/get?x=1", out);
  CHECK(out == "/get?x=1");
  upstream_target(r, "/httpbin", "/get?x=1", out);
  CHECK(out == "/httpbin/get?x=1");
  upstream_target(r, "/httpbin/", "/", out);
  CHECK(out == "/httpbin/");
  r.rewrite_from = "/httpbin";
  r.rewrite_to = "/";
  upstream_target(r, "", "/httpbin/get", out);
  CHECK(out == "/get");
  upstream_target(r, "", "/httpbin", out);
  CHECK(out == "/");
  upstream_target(r, "", "/httpbin?a=b", out);
  CHECK(out == "/?a=b");
  upstream_target(r, "", "/httpbinx", out);
  CHECK(out == "/httpbinx");
  r.rewrite_to = "/v1";
  upstream_target(r, "/gw", "/httpbin/get", out);
  CHECK(out == "/gw/v1/get");
}

TEST_CASE("pick fills the result; no route and no endpoint have reasons", "[routing]") {
  auto m = model_of({service("httpbin", {cluster(kLocal, endpoints(2)), cluster(kC1, {ep("172.16.0.1", 80)}, "/httpbin")})},
                    {route({"httpbin"}, "httpbin.default"), route({"ghost"}, "ghost.default")});
  m.routes[0].host_rewrite = "upstream.example";
  Harness h(m);
  AttemptState a;
  auto r = h.picker.pick(h.request("httpbin:8080", "/get"), a, h.clock.now);
  REQUIRE(r.status == PickStatus::ok);
  CHECK(r.address.rfind("10.0.0.", 0) == 0);
  CHECK(r.port == 8080);
  CHECK(r.upstream_target == "/get");
  CHECK(r.host_header == "upstream.example");
  CHECK(r.service_id == "httpbin.default");
  CHECK(r.cluster == kLocal);
  CHECK_FALSE(r.remote);
  CHECK(a.attempt == 1);
  CHECK(a.tried_tokens.size() == 1);
  h.picker.finish(r, Outcome::success, h.clock.now);

  AttemptState b;
  auto none = h.picker.pick(h.request("nope", "/x"), b, h.clock.now);
  CHECK(none.status == PickStatus::no_route);
  CHECK(none.reason.find("nope") != std::string::npos);
  auto ghost = h.picker.pick(h.request("ghost", "/x"), b, h.clock.now);
  CHECK(ghost.status == PickStatus::no_endpoint);
  CHECK(ghost.reason.find("ghost.default") != std::string::npos);
}

TEST_CASE("Locality: a service with only remote endpoints answers no endpoint, as in the seed", "[routing]") {
  Harness h(model_of({service("httpbin", {cluster(kC1, {ep("172.16.0.1", 80)}, "/httpbin"),
                                          cluster(kC3, {ep("172.16.0.3", 80)}, "/httpbin")})}));
  AttemptState a;
  auto r = h.picker.pick(h.request("httpbin"), a, h.clock.now);
  CHECK(r.status == PickStatus::no_endpoint);
  CHECK(r.reason.find("policy Locality") != std::string::npos);
  CHECK(r.reason.find(kC1) != std::string::npos);
}
