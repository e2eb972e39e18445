// Helpers shared by the config tests.
#pragma once

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "config/parse.hpp"

namespace sluice::config::test {

using json = nlohmann::json;

// The smallest valid document with one of each list entry, to be mutated by a test.
inline json minimal() {
  return json::parse(R"({
    "listeners": [{"name": "http", "port": 8080}],
    "services": [{"name": "httpbin", "namespace": "httpbin",
                  "clusters": [{"cluster": "default/default/default/local",
                                "endpoints": ["127.0.0.1:9001"]}]}],
    "routes": [{"hosts": ["*"], "service": "httpbin.httpbin"}]
  })");
}

// The errors for DOC; the test fails when there are none.
inline std::vector<std::string> errors_of(const json& doc) {
  const ParseResult r = parse_config(doc.dump());
  CHECK_FALSE(r.config);
  CHECK_FALSE(r.errors.empty());
  return r.errors;
}

inline std::vector<std::string> errors_of_text(const std::string& text) {
  const ParseResult r = parse_config(text);
  CHECK_FALSE(r.config);
  return r.errors;
}

// The config for DOC; fails the test (printing the errors) when invalid.
inline Config config_of(const json& doc) {
  const ParseResult r = parse_config(doc.dump());
  INFO("errors: " << json(r.errors).dump());
  REQUIRE(r.errors.empty());
  REQUIRE(r.config);
  return *r.config;
}

// Exactly one error, and it is MESSAGE.
inline void only_error(const json& doc, const std::string& message) {
  const auto errors = errors_of(doc);
  INFO("errors: " << json(errors).dump());
  CHECK(errors == std::vector<std::string>{message});
}

inline bool contains(const std::vector<std::string>& errors, const std::string& message) {
  return std::find(errors.begin(), errors.end(), message) != errors.end();
}

}  // namespace sluice::config::test
