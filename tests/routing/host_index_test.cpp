// The snapshot's host map (routing/host_index.hpp): short keys matched from the slot alone, long keys
// through their record, several routes per host in rank order, misses.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "routing/host_index.hpp"

using sluice::routing::HostIndex;

namespace {

std::vector<std::uint32_t> ids(HostIndex::Routes r) { return {r.ids, r.ids + r.count}; }

}  // namespace

TEST_CASE("host index: short and long hosts, one or several routes, misses", "[routing]") {
  const std::string long_host(200, 'x');
  const std::string long_other = std::string(199, 'x') + "y";  // differs only past the inline bytes
  const std::string edge(HostIndex::kInlineKey, 'e');          // exactly the inline size
  std::vector<HostIndex::Entry> entries = {
      {"reviews.bookinfo", 7, 0},
      {"shop.example", 3, 2}, {"shop.example", 1, 0}, {"shop.example", 2, 1}, {"shop.example", 1, 0},
      {long_host, 4, 0},
      {edge, 5, 0},
  };
  // Many others, so that probing runs past occupied slots.
  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) names.push_back("svc-" + std::to_string(i) + ".ns");
  for (std::uint32_t i = 0; i < names.size(); ++i) entries.push_back({names[i], 100 + i, 0});

  HostIndex index;
  index.build(entries);
  CHECK(index.size() == 4 + names.size());
  CHECK(ids(index.find("reviews.bookinfo")) == std::vector<std::uint32_t>{7});
  CHECK(ids(index.find("shop.example")) == std::vector<std::uint32_t>{1, 2, 3});  // by rank, duplicate once
  CHECK(ids(index.find(long_host)) == std::vector<std::uint32_t>{4});
  CHECK(index.find(long_other).count == 0);
  CHECK(ids(index.find(edge)) == std::vector<std::uint32_t>{5});
  CHECK(index.find(edge + "e").count == 0);
  CHECK(index.find("reviews.bookinf").count == 0);
  CHECK(index.find("").count == 0);
  for (std::uint32_t i = 0; i < names.size(); ++i) {
    REQUIRE(ids(index.find(names[i])) == std::vector<std::uint32_t>{100 + i});
  }
  std::size_t seen = 0;
  index.for_each([&](std::string_view host, HostIndex::Routes r) {
    ++seen;
    CHECK(index.find(host).count == r.count);
  });
  CHECK(seen == index.size());
}
