// Config path: JSON text -> validated config::Config (config::parse_config), the duration and cluster-key
// parsers on the same bytes, and a valid config's routing model built into a snapshot.
//
// Invariants: parse_config never throws and gives either a config or at least one non-empty error naming
// a path; a config it accepts passes validate_config again and builds a routing snapshot; a duration
// that parses formats back (format_duration) to text that parses to the same value; a cluster key that
// parses has four non-empty parts and formats back to the same key.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/parse.hpp"
#include "config/text.hpp"
#include "config/validate.hpp"
#include "routing/builder.hpp"
#include "routing/model.hpp"
#include "routing/registry.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace sluice;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (auto d = config::parse_duration(text)) {
    FUZZ_CHECK(d->count() >= 0, "negative duration");
    const auto again = config::parse_duration(config::format_duration(*d));
    FUZZ_CHECK(again && *again == *d, "format_duration does not read back");
  }
  if (auto key = config::parse_cluster_key(text)) {
    FUZZ_CHECK(!key->region.empty() && !key->zone.empty() && !key->group.empty() && !key->name.empty(),
               "cluster key with an empty part");
    FUZZ_CHECK(key->key() == text, "cluster key does not format back");
  }

  auto result = config::parse_config(text);
  if (!result.config) {
    FUZZ_CHECK(!result.errors.empty(), "refused without an error");
    for (const auto& e : result.errors) FUZZ_CHECK(!e.empty(), "empty error");
    return 0;
  }
  FUZZ_CHECK(result.errors.empty(), "a config and errors");
  FUZZ_CHECK(config::validate_config(*result.config).empty(), "accepted config fails validation");
  routing::EndpointRegistry registry;
  auto snapshot = routing::build_snapshot(routing::static_model(*result.config), registry,
                                          std::chrono::steady_clock::now());
  FUZZ_CHECK(snapshot != nullptr, "no snapshot from a valid config");
  return 0;
}
