// Parsing and validation of the JSON configuration into config::Config.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace sluice::config {

// Every problem found, each naming its JSON path, e.g.
// "listeners[1].port: expected 1..65535, got 70000" or "services[0].lodbalancer: unknown key".
struct ParseResult {
  std::optional<Config> config;      // set only when errors is empty
  std::vector<std::string> errors;
};

// Parses and validates JSON text. Never throws. Any thread.
ParseResult parse_config(std::string_view json_text);

// Reads FILE and parses it; an unreadable file is one error naming the file.
ParseResult load_config_file(const std::string& path);

// Parses a duration written as "10s", "250ms", "2m" or "1h". nullopt when malformed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace sluice::config
