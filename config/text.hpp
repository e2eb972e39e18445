// Text forms of configuration values: the JSON spellings of the enums (for
// /routes, /explain and logs), durations as written in the config, cluster keys.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace sluice::config {

// The canonical JSON spelling ("standalone", "RoundRobin", "client_address",
// "ActiveActive", "prefix"). Never empty.
std::string_view to_string(Role role);
std::string_view to_string(LoadBalancer lb);
std::string_view to_string(HashOn on);
std::string_view to_string(LbType type);
std::string_view to_string(PathMatch match);

// The shortest exact form parse_duration reads back: "0", "250ms", "10s",
// "2m", "1h", "1h30m", "1500ms".
std::string format_duration(std::chrono::milliseconds d);

// "region/zone/group/name" with four non-empty parts -> the identity;
// nullopt otherwise (wrong part count, an empty part, white space).
std::optional<ClusterIdentity> parse_cluster_key(std::string_view key);

}  // namespace sluice::config
