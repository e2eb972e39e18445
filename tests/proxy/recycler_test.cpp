// The recycler (proxy/recycler.hpp): freed blocks come back for the next allocation of their size class,
// on the thread that freed them, up to the caps; large blocks bypass it; parsed heads (head_fields.hpp)
// live in it.
#include <catch2/catch.hpp>

#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/buffer.hpp>

#include "proxy/head_checks.hpp"
#include "proxy/recycler.hpp"

using namespace sluice::proxy;

TEST_CASE("a freed block is reused for any size of its class", "[proxy][recycler]") {
  void* a = recycler::allocate(1000);
  recycler::deallocate(a, 1000);
  // 1000 and 1020 round up to the same 1024-byte class.
  void* b = recycler::allocate(1020);
  CHECK(b == a);
  recycler::deallocate(b, 1020);
  // Another class does not take it.
  void* c = recycler::allocate(2000);
  CHECK(c != a);
  recycler::deallocate(c, 2000);
}

TEST_CASE("blocks are handed out last freed first, and every one is writable", "[proxy][recycler]") {
  std::vector<void*> blocks;
  for (int i = 0; i < 10; ++i) {
    blocks.push_back(recycler::allocate(300));
    std::memset(blocks.back(), 0xab, 300);
  }
  CHECK(std::set<void*>(blocks.begin(), blocks.end()).size() == blocks.size());
  for (auto* p : blocks) recycler::deallocate(p, 300);
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    void* p = recycler::allocate(300);
    CHECK(p == *it);
  }
  for (auto* p : blocks) recycler::deallocate(p, 300);
}

TEST_CASE("a class keeps at most kPerClass blocks", "[proxy][recycler]") {
  constexpr std::size_t n = recycler::kPerClass + 10;
  constexpr std::size_t size = 4000;
  std::vector<void*> blocks;
  for (std::size_t i = 0; i < n; ++i) blocks.push_back(recycler::allocate(size));
  for (auto* p : blocks) recycler::deallocate(p, size);
  // The first kPerClass freed are cached (they come back, last first); the ten beyond went to the heap.
  std::set<void*> cached(blocks.begin(), blocks.begin() + recycler::kPerClass);
  std::vector<void*> again;
  for (std::size_t i = 0; i < recycler::kPerClass; ++i) {
    again.push_back(recycler::allocate(size));
    CHECK(cached.count(again.back()) == 1);
  }
  for (auto* p : again) recycler::deallocate(p, size);
}

TEST_CASE("blocks past kMaxRecycled bypass the cache", "[proxy][recycler]") {
  void* big = recycler::allocate(recycler::kMaxRecycled + 1);
  std::memset(big, 1, recycler::kMaxRecycled + 1);
  recycler::deallocate(big, recycler::kMaxRecycled + 1);
  recycler::deallocate(nullptr, 100);  // a no-op, as delete of null
}

TEST_CASE("a block freed on another thread serves that thread's next allocation", "[proxy][recycler]") {
  void* mine = recycler::allocate(500);
  void* theirs = nullptr;
  std::thread t([&] {
    recycler::deallocate(mine, 500);  // joins this thread's cache
    theirs = recycler::allocate(500);
    recycler::deallocate(theirs, 500);
  });  // the thread's end frees its cache
  t.join();
  CHECK(theirs == mine);
}

namespace {

// Frees its block from a thread_local's destructor: made before the thread's cache holds anything, so it
// is destroyed after the cache has been emptied at the thread's end (reverse order of construction).
struct FreesLate {
  void* block = recycler::allocate(200);
  ~FreesLate() { recycler::deallocate(block, 200); }
};

}  // namespace

TEST_CASE("a thread's end empties its cache, and a block freed after that goes to the heap", "[proxy][recycler]") {
  // Under the sanitizers (tests/run.sh builds with them), a block kept or freed twice here is a reported leak
  // or double free; without them the thread at least runs the path.
  bool reused = false;
  std::thread t([&] {
    static thread_local FreesLate late;
    std::vector<std::pair<void*, std::size_t>> blocks;
    for (std::size_t size : {64, 200, 1000, 4000}) {
      for (int i = 0; i < 8; ++i) blocks.emplace_back(recycler::allocate(size), size);
    }
    for (auto [block, size] : blocks) recycler::deallocate(block, size);  // cached until the thread ends
    void* again = recycler::allocate(200);
    reused = again != late.block;  // a fresh one or a recycled one, never the block still in use
    recycler::deallocate(again, 200);
  });
  t.join();
  CHECK(reused);
}

TEST_CASE("request heads parse into recycled fields", "[proxy][recycler]") {
  const std::string head =
      "GET /a/rather/long/path/to/need/a/heap/block?q=1 HTTP/1.1\r\nHost: example.test\r\n"
      "X-Long-Header-Name: a value long enough for its own element\r\n\r\n";
  for (int round = 0; round < 3; ++round) {
    request_head_parser parser;
    prepare_request_parser(parser, 8192);
    boost::system::error_code ec;
    parser.put(boost::asio::buffer(head), ec);
    REQUIRE(!ec);
    REQUIRE(parser.is_header_done());
    std::string authority;
    auto& req = parser.get();
    CHECK_FALSE(check_request_head(req, authority).has_value());
    CHECK(authority == "example.test");
    CHECK(req.target() == "/a/rather/long/path/to/need/a/heap/block?q=1");
    CHECK(req["x-long-header-name"] == "a value long enough for its own element");
  }
}
