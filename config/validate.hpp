// The checks a Config must pass beyond JSON types: references between
// sections, uniqueness, addresses, cluster keys, readable TLS files, ranges.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/errors.hpp"

namespace sluice::config {

// Every problem in CONFIG as "path: problem", paths spelled as in the JSON
// ("routes[2].service: no service \"foo.bar\""); empty when valid. For configs
// built in code (embedding); parse_config already runs it. Reads the TLS
// files named to check they are readable. Any thread.
std::vector<std::string> validate_config(const Config& config);

// The same, adding to ERRORS (one error per path: see Errors).
void validate_config(const Config& config, Errors& errors);

}  // namespace sluice::config
