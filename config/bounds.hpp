// Accepted ranges of configuration values, shared by the JSON reader (which
// reports them with the offending value) and validate_config (which checks
// structs built in code). Internal to config/.
#pragma once

#include <cstdint>

#include "config/config.hpp"

namespace sluice::config::bounds {

inline constexpr std::int64_t min_port = 1;
inline constexpr std::int64_t max_port = 65535;
inline constexpr std::int64_t max_workers = Config::max_workers;
// Weights stay small enough that a sum over ~4000 endpoints fits 32 bits.
inline constexpr std::int64_t min_weight = 1;
inline constexpr std::int64_t max_weight = 1'000'000;
inline constexpr std::int64_t min_header_bytes = 1024;
inline constexpr std::int64_t max_header_bytes = 16 * 1024 * 1024;
inline constexpr std::int64_t max_header_count = 10'000;
inline constexpr std::int64_t max_retries = 10;
inline constexpr std::int64_t max_count = 1'000'000;  // thresholds, pool sizes, pending limits
inline constexpr double max_percent = 100;
inline constexpr double max_overprovisioning = 100;

}  // namespace sluice::config::bounds
