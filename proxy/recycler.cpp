#include "proxy/recycler.hpp"

#include <array>
#include <cstdint>
#include <new>

namespace sluice::proxy::recycler {
namespace {

constexpr std::size_t kClasses = kMaxRecycled / kGranule;

struct FreeBlock {
  FreeBlock* next;
};

struct Cache {
  std::array<FreeBlock*, kClasses> heads{};
  std::array<std::uint32_t, kClasses> counts{};
  std::size_t bytes = 0;  // held in all classes
  ~Cache();
};

// Set when this thread's cache is destroyed (thread exit): a block freed later (a frame destroyed by a
// thread_local's destructor) goes straight back to the heap. Trivially destructible, so readable until the
// thread's storage is gone.
thread_local bool t_cache_gone = false;
thread_local Cache t_cache;

Cache::~Cache() {
  t_cache_gone = true;
  for (std::size_t c = 0; c < kClasses; ++c) {
    while (auto* b = heads[c]) {
      heads[c] = b->next;
      ::operator delete(b);
    }
  }
}

// Class c holds blocks of (c + 1) * kGranule bytes.
std::size_t class_of(std::size_t size) { return size == 0 ? 0 : (size - 1) / kGranule; }

}  // namespace

void* allocate(std::size_t size) {
  if (size > kMaxRecycled || t_cache_gone) return ::operator new(size);
  const auto c = class_of(size);
  auto& cache = t_cache;
  if (auto* b = cache.heads[c]) {
    cache.heads[c] = b->next;
    --cache.counts[c];
    cache.bytes -= (c + 1) * kGranule;
    return b;
  }
  return ::operator new((c + 1) * kGranule);
}

void deallocate(void* p, std::size_t size) noexcept {
  if (!p) return;
  if (size > kMaxRecycled) return ::operator delete(p);
  const auto c = class_of(size);
  if (t_cache_gone) return ::operator delete(p);
  auto& cache = t_cache;
  if (cache.counts[c] >= kPerClass || cache.bytes >= kMaxCachedBytes) return ::operator delete(p);
  auto* b = static_cast<FreeBlock*>(p);
  b->next = cache.heads[c];
  cache.heads[c] = b;
  ++cache.counts[c];
  cache.bytes += (c + 1) * kGranule;
}

}  // namespace sluice::proxy::recycler
