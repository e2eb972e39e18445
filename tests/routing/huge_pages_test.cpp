// Huge-page backed memory for the routing table (routing/huge_pages.hpp): alignment, the whole block
// usable, the pool's reuse of freed blocks and its fallback for other sizes, objects outliving their
// pool's owner, and the registry's states coming from its pools.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <vector>

#include "routing/huge_pages.hpp"
#include "routing/registry.hpp"

using namespace sluice::routing;

namespace {

bool aligned(const void* p, std::size_t to) { return reinterpret_cast<std::uintptr_t>(p) % to == 0; }

struct alignas(64) Block {
  std::uint64_t value[8] = {};
};

}  // namespace

TEST_CASE("huge pages: small and big allocations are aligned and usable end to end", "[routing]") {
  void* small = huge_allocate(1000, 64);
  CHECK(aligned(small, 64));
  std::memset(small, 0xab, 1000);
  huge_deallocate(small, 1000, 64);

  const std::size_t big_size = kHugeMin + 12345;  // not a whole number of huge pages
  auto* big = static_cast<unsigned char*>(huge_allocate(big_size, 64));
  CHECK(aligned(big, kHugePage));
  std::memset(big, 0x5a, big_size);
  CHECK(big[0] == 0x5a);
  CHECK(big[big_size - 1] == 0x5a);
  huge_deallocate(big, big_size, 64);

  HugeVector<Block> v(40000);  // 2.5 MiB: huge pages
  CHECK(aligned(v.data(), kHugePage));
  v.back().value[7] = 42;
  v.resize(80000);  // grows into a new mapping, contents kept
  CHECK(v[39999].value[7] == 42);
}

TEST_CASE("huge pages: the block pool grows into huge pages, reuses freed blocks, falls back for other sizes", "[routing]") {
  BlockPool pool(64);
  std::set<void*> seen;
  std::vector<void*> blocks;
  for (int i = 0; i < 20000; ++i) {  // more than one 2 MiB chunk of 192-byte blocks
    void* p = pool.allocate(150);
    REQUIRE(aligned(p, 64));
    CHECK(seen.insert(p).second);
    std::memset(p, i & 0xff, 150);
    blocks.push_back(p);
  }
  // Small chunks first, then (past 2 MiB of them) whole huge pages: some block starts a 2 MiB page.
  CHECK(std::any_of(blocks.begin(), blocks.end(), [](void* p) { return aligned(p, kHugePage); }));
  // Blocks do not overlap: each still holds what was written into it.
  for (int i = 0; i < 20000; ++i) CHECK(static_cast<unsigned char*>(blocks[static_cast<std::size_t>(i)])[149] == (i & 0xff));
  pool.deallocate(blocks[7], 150);
  CHECK(pool.allocate(150) == blocks[7]);  // the free list first

  void* other = pool.allocate(4000);  // not the pool's block size: operator new
  CHECK(aligned(other, 64));
  CHECK(seen.count(other) == 0);
  std::memset(other, 1, 4000);
  pool.deallocate(other, 4000);
  for (void* p : blocks) pool.deallocate(p, 150);
}

TEST_CASE("huge pages: objects made through PoolAllocator outlive their pool's owner", "[routing]") {
  auto pool = std::make_shared<BlockPool>(alignof(Block));
  std::shared_ptr<Block> a = std::allocate_shared<Block>(PoolAllocator<Block>(pool));
  std::shared_ptr<Block> b = std::allocate_shared<Block>(PoolAllocator<Block>(pool));
  CHECK(a.get() != b.get());
  CHECK(aligned(a.get(), 64));
  std::weak_ptr<BlockPool> watch = pool;
  pool.reset();
  a->value[0] = 1;  // the control blocks hold the pool
  CHECK_FALSE(watch.expired());
  a.reset();
  b.reset();
  CHECK(watch.expired());  // the last object freed the pool (and its chunks)
}

TEST_CASE("huge pages: the registry's states come from its pools, distinct and line-aligned", "[routing]") {
  std::set<const void*> seen;
  std::vector<std::shared_ptr<EndpointState>> kept;
  {
    EndpointRegistry registry;
    registry.begin_build();
    auto svc = registry.acquire_service("a.default");
    CHECK(aligned(svc.get(), 64));
    for (int i = 0; i < 100; ++i) {
      auto s = registry.acquire_endpoint("a.default|c|10.0.0." + std::to_string(i) + ":80", svc, false,
                                         Clock::now());
      CHECK(aligned(s.get(), 64));
      CHECK(seen.insert(s.get()).second);
      kept.push_back(s);
    }
    registry.end_build(Clock::now());
  }
  // The registry is gone; the states (as a snapshot would hold them) still work.
  kept.front()->active.fetch_add(1);
  CHECK(kept.front()->active.load() == 1);
  CHECK(kept.back()->service != nullptr);
}
