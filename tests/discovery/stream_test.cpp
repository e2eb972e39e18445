#include <random>
#include <vector>

#include <catch2/catch.hpp>

#include "discovery/backoff.hpp"
#include "discovery/line_splitter.hpp"

using namespace sluice::discovery;

TEST_CASE("line splitter yields the same lines for every chunking", "[discovery]") {
  const std::string stream =
      "{\"type\":\"ADDED\",\"object\":{\"a\":1}}\n"
      "{\"type\":\"BOOKMARK\",\"object\":{}}\r\n"
      "\n"
      "{\"type\":\"DELETED\",\"object\":{\"b\":\"x\\ny\"}}\n";
  const std::vector<std::string> expected = {"{\"type\":\"ADDED\",\"object\":{\"a\":1}}",
                                             "{\"type\":\"BOOKMARK\",\"object\":{}}",
                                             "{\"type\":\"DELETED\",\"object\":{\"b\":\"x\\ny\"}}"};
  std::mt19937 rng(42);
  for (int round = 0; round < 500; ++round) {
    LineSplitter splitter;
    std::vector<std::string> got;
    std::size_t pos = 0;
    while (pos < stream.size()) {
      std::size_t n = std::uniform_int_distribution<std::size_t>(1, 20)(rng);
      n = std::min(n, stream.size() - pos);
      REQUIRE(splitter.feed(std::string_view(stream).substr(pos, n),
                            [&](std::string_view line) { got.emplace_back(line); }));
      pos += n;
    }
    REQUIRE(got == expected);
    REQUIRE(splitter.pending() == 0);
  }
  // Byte by byte as well.
  LineSplitter splitter;
  std::vector<std::string> got;
  for (char c : stream) splitter.feed(std::string_view(&c, 1), [&](std::string_view l) { got.emplace_back(l); });
  CHECK(got == expected);
}

TEST_CASE("line splitter keeps an incomplete line and refuses an oversized one", "[discovery]") {
  LineSplitter splitter(10);
  int lines = 0;
  CHECK(splitter.feed("abc", [&](std::string_view) { ++lines; }));
  CHECK(splitter.pending() == 3);
  CHECK(lines == 0);
  CHECK_FALSE(splitter.feed("0123456789", [&](std::string_view) { ++lines; }));
}

TEST_CASE("backoff grows exponentially with jitter, is capped, and resets", "[discovery]") {
  using std::chrono::milliseconds;
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    Backoff b(Backoff::default_initial, Backoff::default_max, Backoff::default_jitter, seed);
    const std::int64_t ceilings[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (auto ceiling : ceilings) {
      auto d = b.next().count();
      CHECK(d >= static_cast<std::int64_t>(ceiling * 0.8));
      CHECK(d <= ceiling);
    }
    b.reset();
    auto d = b.next().count();
    CHECK(d >= 800);
    CHECK(d <= 1000);
  }
  // Defaults pinned: 0.8 s .. 30 s.
  CHECK(Backoff::default_initial == milliseconds(1000));
  CHECK(Backoff::default_max == milliseconds(30000));
  CHECK(Backoff::default_jitter == Approx(0.2));
}
