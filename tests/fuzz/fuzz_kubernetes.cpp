// Kubernetes path: a watch response body (newline-delimited JSON events, arriving in pieces) through the
// line splitter, each event's object into the object store (the Service, EndpointSlice, flomesh.io and
// MCS ServiceImport, ServiceExport and GlobalTrafficPolicy parsers), then the store translated into the
// routing model, merged over a sidecar+gateway static config, validated and built into a snapshot, as
// the Kubernetes source does after each event.
//
// Input: byte 0 picks the piece size (1..256 bytes); the rest is the stream. Each event's resource kind
// is read from its object's "kind" and "apiVersion", as the watch it would come from implies.
// Invariants: the splitter's lines hold no newline and it never buffers past its limit; a store refusal
// comes with an error; the translated and merged model always passes validate_config (the checks a
// model must pass to be routable) and builds.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "config/text.hpp"
#include "config/validate.hpp"
#include "discovery/line_splitter.hpp"
#include "discovery/merge.hpp"
#include "discovery/object_store.hpp"
#include "discovery/translate.hpp"
#include "routing/builder.hpp"
#include "routing/registry.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace sluice;
using namespace sluice::discovery;

namespace {
constexpr std::size_t kMaxLine = 4 * 1024;  // below the default so that inputs of 8 KiB (run.sh) reach it

std::optional<Kind> kind_of(const nlohmann::json& object) {
  if (!object.is_object() || !object.contains("kind") || !object["kind"].is_string()) return std::nullopt;
  const auto kind = object["kind"].get<std::string>();
  const auto api = object.contains("apiVersion") && object["apiVersion"].is_string()
                       ? object["apiVersion"].get<std::string>() : std::string();
  if (kind == "Service") return Kind::service;
  if (kind == "EndpointSlice") return Kind::endpoint_slice;
  if (kind == "ServiceImport") {
    return api.starts_with("multicluster.x-k8s.io/") ? Kind::mcs_service_import : Kind::service_import;
  }
  if (kind == "ServiceExport") return Kind::service_export;
  if (kind == "GlobalTrafficPolicy") return Kind::traffic_policy;
  return std::nullopt;
}

config::Config static_config() {
  config::Config cfg;
  cfg.cluster = *config::parse_cluster_key("default/default/default/cluster-2");
  config::Listener sidecar;
  sidecar.name = "sidecar";
  sidecar.port = 15001;
  sidecar.role = config::Role::sidecar;
  config::Listener gateway;
  gateway.name = "gateway";
  gateway.port = 15002;
  gateway.role = config::Role::gateway;
  cfg.listeners = {sidecar, gateway};
  return cfg;
}
bool store_is_empty(const ObjectStore& store) {
  for (auto kind : {Kind::service, Kind::endpoint_slice, Kind::service_import, Kind::service_export,
                    Kind::traffic_policy, Kind::mcs_service_import}) {
    if (store.count(kind) != 0) return false;
  }
  return true;
}

// What the Kubernetes source does after an event: translate the store, merge it over the static config,
// and the result must pass validate_config and build.
void check_model(const ObjectStore& store) {
  static const config::Config base = static_config();
  static const routing::Model base_model = routing::static_model(base);
  auto cfg = base;
  TranslateOptions options;
  options.local = cfg.cluster;
  options.sidecar_listeners = {"sidecar"};
  options.gateway_listeners = {"gateway"};
  options.home_namespace = "default";
  auto model = merge_model(base_model, translate(store, options), false);
  cfg.services = model.services;
  cfg.routes = model.routes;
  const auto errors = config::validate_config(cfg);
  if (!errors.empty()) {
    std::fprintf(stderr, "translated model refused: %s\n", errors.front().c_str());
    FUZZ_CHECK(errors.empty(), "translated model fails validation");
  }
  routing::EndpointRegistry registry;
  FUZZ_CHECK(routing::build_snapshot(model, registry, std::chrono::steady_clock::now()) != nullptr, "no snapshot");
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::size_t stride = 1 + data[0];
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);

  ObjectStore store;
  LineSplitter splitter(kMaxLine);
  for (std::size_t at = 0; at < input.size(); at += stride) {
    const bool ok = splitter.feed(input.substr(at, std::min(stride, input.size() - at)), [&](std::string_view line) {
      FUZZ_CHECK(line.find('\n') == std::string_view::npos && !line.empty(), "bad line");
      FUZZ_CHECK(line.size() <= kMaxLine, "line past the limit");
      auto event = nlohmann::json::parse(line, nullptr, false);
      if (!event.is_object() || !event.contains("type") || !event["type"].is_string()) return;
      const auto type = event["type"].get<std::string>();
      if (!event.contains("object")) return;
      const auto kind = kind_of(event["object"]);
      if (!kind) return;
      const EventType t = type == "DELETED" ? EventType::deleted
                          : type == "MODIFIED" ? EventType::modified : EventType::added;
      const auto error = store.apply(*kind, t, event["object"]);
      (void)error;  // a malformed object is skipped, with its error logged by the source
    });
    if (!ok) break;  // the watch is dropped and restarted
    FUZZ_CHECK(splitter.pending() <= kMaxLine, "splitter buffers past its limit");
  }

  // Most inputs leave the store empty (no line is an event of a kind the store takes, or every object
  // is refused); the model is then the static one every time, checked once, not once per input.
  static const bool empty_store_checked = (check_model(ObjectStore{}), true);
  (void)empty_store_checked;
  if (store_is_empty(store)) return 0;
  check_model(store);
  return 0;
}
