// proxy/h2_upstream.hpp's gRPC helpers: content types, grpc-timeout, grpc-status.
#include <chrono>

#include <catch2/catch.hpp>

#include "proxy/h2_upstream.hpp"

using namespace std::chrono;
using sluice::proxy::is_grpc_content_type;
using sluice::proxy::parse_grpc_timeout;

TEST_CASE("gRPC content types", "[proxy][grpc]") {
  CHECK(is_grpc_content_type("application/grpc"));
  CHECK(is_grpc_content_type("application/grpc+proto"));
  CHECK(is_grpc_content_type("Application/GRPC;charset=utf-8"));
  CHECK_FALSE(is_grpc_content_type("application/grpc-web"));
  CHECK_FALSE(is_grpc_content_type("application/json"));
  CHECK_FALSE(is_grpc_content_type(""));
}

TEST_CASE("grpc-timeout: 1 to 8 digits and a unit", "[proxy][grpc]") {
  CHECK(parse_grpc_timeout("1H") == steady_clock::duration(hours(1)));
  CHECK(parse_grpc_timeout("2M") == steady_clock::duration(minutes(2)));
  CHECK(parse_grpc_timeout("3S") == steady_clock::duration(seconds(3)));
  CHECK(parse_grpc_timeout("250m") == steady_clock::duration(milliseconds(250)));
  CHECK(parse_grpc_timeout("99999999u") == steady_clock::duration(microseconds(99999999)));
  CHECK(parse_grpc_timeout("5n") == steady_clock::duration(nanoseconds(5)));
  CHECK_FALSE(parse_grpc_timeout("123456789S"));  // 9 digits
  CHECK_FALSE(parse_grpc_timeout("S"));
  CHECK_FALSE(parse_grpc_timeout("10"));
  CHECK_FALSE(parse_grpc_timeout("10x"));
  CHECK_FALSE(parse_grpc_timeout("-1S"));
  CHECK_FALSE(parse_grpc_timeout(""));
}

TEST_CASE("grpc-status of a header list", "[proxy][grpc]") {
  CHECK(sluice::proxy::grpc_status_of({{"content-type", "application/grpc"}, {"grpc-status", "14"}}) == 14);
  CHECK(sluice::proxy::grpc_status_of({{"grpc-status", "0"}}) == 0);
  CHECK(sluice::proxy::grpc_status_of({{"grpc-status", "x"}}) == -1);
  CHECK(sluice::proxy::grpc_status_of(std::vector<sluice::proxy::H2Field>{}) == -1);
}
