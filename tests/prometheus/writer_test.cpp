#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <string>

#include "prometheus/writer.hpp"

using sluice::prometheus::append_label_value;
using sluice::prometheus::Type;
using sluice::prometheus::Writer;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("a family has its HELP and TYPE then its samples", "[prometheus]") {
  std::string text;
  Writer out(text);
  out.family("sluice_requests_total", Type::counter, "Requests received.");
  out.sample(std::uint64_t{42});
  out.family("sluice_snapshot_stale", Type::gauge, "1 while stale.");
  out.sample(true);
  CHECK(text ==
        "# HELP sluice_requests_total Requests received.\n"
        "# TYPE sluice_requests_total counter\n"
        "sluice_requests_total 42\n"
        "# HELP sluice_snapshot_stale 1 while stale.\n"
        "# TYPE sluice_snapshot_stale gauge\n"
        "sluice_snapshot_stale 1\n");
}

TEST_CASE("HELP and TYPE are written once per family however many renderers start it", "[prometheus]") {
  std::string text;
  Writer out(text);
  out.family("sluice_x_total", Type::counter, "X.");
  out.sample({{"service", "a.ns"}}, 1);
  out.family("sluice_x_total", Type::counter, "X.");
  out.sample({{"service", "b.ns"}}, 2);
  CHECK(count(text, "# HELP sluice_x_total ") == 1);
  CHECK(count(text, "# TYPE sluice_x_total ") == 1);
  CHECK(text.find("sluice_x_total{service=\"a.ns\"} 1\nsluice_x_total{service=\"b.ns\"} 2\n") != std::string::npos);
}

TEST_CASE("label values are escaped: backslash, double quote, newline", "[prometheus]") {
  std::string text;
  Writer out(text);
  out.family("sluice_upstream_requests_total", Type::counter, "Requests.");
  out.sample({{"service", "a\"b"}, {"cluster", "c\\d\ne"}}, 3);
  CHECK(text.find("sluice_upstream_requests_total{service=\"a\\\"b\",cluster=\"c\\\\d\\ne\"} 3\n") !=
        std::string::npos);

  std::string v;
  append_label_value(v, "plain default/default/default/cluster-1");
  CHECK(v == "plain default/default/default/cluster-1");
  v.clear();
  append_label_value(v, "\\\"\n");
  CHECK(v == "\\\\\\\"\\n");
}

TEST_CASE("HELP text escapes backslash and newline, not quotes", "[prometheus]") {
  std::string text;
  Writer out(text);
  out.family("m", Type::gauge, "a \"b\" c\\d\ne");
  CHECK(text == "# HELP m a \"b\" c\\\\d\\ne\n# TYPE m gauge\n");
}

TEST_CASE("values: integers exactly, doubles shortest, special values as Prometheus spells them", "[prometheus]") {
  std::string text;
  Writer out(text);
  out.family("m", Type::gauge, "h");
  out.sample(std::numeric_limits<std::uint64_t>::max());
  out.sample(-3);
  out.sample(0.5);
  out.sample(0.0);
  out.sample(0.0053);
  out.sample(std::numeric_limits<double>::quiet_NaN());
  out.sample(std::numeric_limits<double>::infinity());
  out.sample(-std::numeric_limits<double>::infinity());
  CHECK(text ==
        "# HELP m h\n# TYPE m gauge\n"
        "m 18446744073709551615\n"
        "m -3\n"
        "m 0.5\n"
        "m 0\n"
        "m 0.0053\n"
        "m NaN\n"
        "m +Inf\n"
        "m -Inf\n");
}
