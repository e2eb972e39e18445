// RoutingInputs and combine (embed/inputs.hpp): the union of a proxy's routing inputs (the config's or
// Proxy::publish's model, then each source's), as published into a routing table.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "embed/inputs.hpp"
#include "routing/publisher.hpp"
#include "routing/snapshot.hpp"
#include "routing/table.hpp"
#include "tests/routing/fixtures.hpp"

using namespace sluice;
using namespace sluice::routing::test;

namespace {

routing::Model model_from(std::string source, std::vector<config::Service> services, bool stale = false) {
  auto m = model_of(std::move(services));
  m.source = std::move(source);
  m.stale = stale;
  return m;
}

// "id@first endpoint address" of every service in the table's snapshot, in order.
std::vector<std::string> published(const routing::Table& table) {
  std::vector<std::string> out;
  for (const auto& svc : table.load()->services) {
    out.push_back(svc.id + "@" + (svc.endpoints.empty() ? std::string("-") : svc.endpoints[0].address));
  }
  return out;
}

struct Inputs {
  routing::Table table;
  routing::EndpointRegistry registry;
  routing::Publisher publisher{table, registry};
  RoutingInputs inputs{publisher};
};

}  // namespace

TEST_CASE("combine: routes in input order, a service from the last input defining it", "[embed]") {
  std::vector<std::optional<routing::Model>> models(3);
  models[0] = model_from("static", {service("a", {cluster(kLocal, {ep("10.0.0.1")})}),
                                    service("b", {cluster(kLocal, {ep("10.0.0.2")})})});
  models[0]->local.name = "first";
  // models[1] absent: skipped.
  models[2] = model_from("kubernetes", {service("b", {cluster(kLocal, {ep("10.9.9.9")})}),
                                        service("c", {cluster(kLocal, {ep("10.0.0.3")})})},
                         /*stale=*/true);
  models[2]->local.name = "second";

  const auto out = combine(models);
  REQUIRE(out.services.size() == 3);
  CHECK(out.services[0].name == "a");
  CHECK(out.services[1].name == "b");  // first position kept, definition replaced
  CHECK(out.services[1].clusters[0].endpoints[0].address == "10.9.9.9");
  CHECK(out.services[2].name == "c");
  REQUIRE(out.routes.size() == 4);
  CHECK(out.routes[0].service == "a.default");
  CHECK(out.routes[1].service == "b.default");
  CHECK(out.routes[2].service == "b.default");
  CHECK(out.routes[3].service == "c.default");
  CHECK(out.local.name == "first");
  CHECK(out.stale);
  CHECK(out.source == "static+kubernetes");
}

TEST_CASE("combine: the same source named once, nothing from nothing", "[embed]") {
  std::vector<std::optional<routing::Model>> models;
  models.push_back(model_from("kubernetes", {}));
  models.push_back(model_from("kubernetes", {}));
  models.push_back(model_from("", {}));
  const auto out = combine(models);
  CHECK(out.source == "kubernetes");
  CHECK_FALSE(out.stale);

  const auto empty = combine({});
  CHECK(empty.services.empty());
  CHECK(empty.routes.empty());
  CHECK(empty.source.empty());
}

TEST_CASE("routing inputs: the config's model, then a source's beside it", "[embed]") {
  Inputs in;
  in.inputs.publish(0, model_from("static", {service("a", {cluster(kLocal, {ep("10.0.0.1")})})}), true);
  CHECK(published(in.table) == std::vector<std::string>{"a.default@10.0.0.1"});
  CHECK(in.table.load()->source == "static");

  in.inputs.publish(2, model_from("mine", {service("b", {cluster(kLocal, {ep("10.0.0.2")})})}));
  CHECK(published(in.table) == std::vector<std::string>{"a.default@10.0.0.1", "b.default@10.0.0.2"});
  CHECK(in.table.load()->source == "static+mine");

  // A source replaces its own model only.
  in.inputs.publish(2, model_from("mine", {service("c", {cluster(kLocal, {ep("10.0.0.3")})})}));
  CHECK(published(in.table) == std::vector<std::string>{"a.default@10.0.0.1", "c.default@10.0.0.3"});
  CHECK(in.publisher.published() == 3);
}

TEST_CASE("routing inputs: Proxy::publish's model replaces the config's for good", "[embed]") {
  Inputs in;
  in.inputs.publish(0, model_from("static", {service("a", {cluster(kLocal, {ep("10.0.0.1")})})}), true);
  in.inputs.publish(0, model_from("program", {service("p", {cluster(kLocal, {ep("10.0.0.7")})})}));
  CHECK(published(in.table) == std::vector<std::string>{"p.default@10.0.0.7"});
  // A config reload (is_config) no longer replaces what the program published.
  const auto generation = in.table.generation();
  in.inputs.publish(0, model_from("static", {service("a", {cluster(kLocal, {ep("10.0.0.8")})})}), true);
  CHECK(in.table.generation() == generation);
  CHECK(published(in.table) == std::vector<std::string>{"p.default@10.0.0.7"});
}

TEST_CASE("routing inputs: a base-owning source carries the config's routing once it has published", "[embed]") {
  Inputs in;
  in.inputs.set_base_owner(1);
  in.inputs.publish(0, model_from("static", {service("a", {cluster(kLocal, {ep("10.0.0.1")})})}), true);
  CHECK(published(in.table) == std::vector<std::string>{"a.default@10.0.0.1"});  // until the source publishes

  // The source merges the config's routing under its own (here: "a" with another endpoint); input 0 no
  // longer adds it, so "a" is published once.
  in.inputs.publish(1, model_from("kubernetes", {service("a", {cluster(kLocal, {ep("10.0.0.5")})}),
                                                 service("k", {cluster(kLocal, {ep("10.0.0.6")})})}));
  CHECK(published(in.table) == std::vector<std::string>{"a.default@10.0.0.5", "k.default@10.0.0.6"});
  CHECK(in.table.load()->source == "kubernetes");

  // A reload of the config is the owner's to republish: input 0 stays empty.
  const auto generation = in.table.generation();
  in.inputs.publish(0, model_from("static", {service("z", {cluster(kLocal, {ep("10.0.0.9")})})}), true);
  CHECK(in.table.generation() == generation);
}

TEST_CASE("routing inputs: unregistered plugins are reported and published anyway", "[embed]") {
  Inputs in;
  auto s = service("a", {cluster(kLocal, {ep("10.0.0.1")})});
  s.load_balancer_plugin = "no-such-plugin";
  const auto problems = in.inputs.publish(0, model_from("static", {s}), true);
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("no-such-plugin") != std::string::npos);
  CHECK(published(in.table) == std::vector<std::string>{"a.default@10.0.0.1"});
}
