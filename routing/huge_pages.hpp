// Memory for the routing table's big arrays in transparent huge pages (2 MiB).
//
// With 10k services a request's lookup touches some eight lines scattered over tens of MiB (host slot,
// route, service, view, endpoint entry and state, cluster): with 4 KiB pages each is also a TLB miss, a
// page walk (two-dimensional under a hypervisor) before the cache miss can even start. The kernel's THP
// mode is usually `madvise`, so arrays get huge pages only when asked: big allocations here are 2 MiB
// aligned mmaps marked MADV_HUGEPAGE. Small ones (below kHugeMin) come from operator new as usual.
// Where THP is off the mmap still works, with small pages.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace sluice::routing {

// Allocations from this size up are huge-page backed (rounded up to whole 2 MiB pages: at most 1/3 lost).
constexpr std::size_t kHugeMin = std::size_t{1} << 20;
constexpr std::size_t kHugePage = std::size_t{2} << 20;

// `bytes` of memory aligned to `align` (a power of two; 2 MiB from kHugeMin up). Throws
// std::bad_alloc. Any thread.
void* huge_allocate(std::size_t bytes, std::size_t align);
// Frees what huge_allocate(bytes, align) returned (same size and alignment). Any thread.
void huge_deallocate(void* p, std::size_t bytes, std::size_t align) noexcept;

// A standard allocator over huge_allocate, for vectors that a lookup reads at random.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(huge_allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { huge_deallocate(p, n * sizeof(T), alignof(T)); }
  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) { return true; }
};

template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

// Fixed-size blocks carved from chunks, reused through a free list: for many small objects that lookups
// read at random and that live long (endpoint and service states), which operator new would scatter over
// small pages. Chunks grow with the pool (64 KiB, doubling up to 512 KiB) until it holds 2 MiB, then are
// whole huge pages: a sidecar with a few services does not pay a 2 MiB page per pool, a 100k-endpoint
// table gets its states on huge pages. The block size is set by the first allocation; an allocation of
// another size goes to operator new. Chunks are returned to the system only when the pool goes.
// Thread-safe (a mutex: objects are made and freed on the control side, never per request).
class BlockPool {
 public:
  explicit BlockPool(std::size_t align) : align_(align) {}
  ~BlockPool();
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;

  // `bytes` aligned to the pool's alignment. Throws std::bad_alloc.
  void* allocate(std::size_t bytes);
  // Frees what allocate(bytes) returned.
  void deallocate(void* p, std::size_t bytes) noexcept;

 private:
  static constexpr std::size_t kFirstChunk = std::size_t{64} << 10;
  static constexpr std::size_t kMaxSmallChunk = std::size_t{512} << 10;  // below kHugeMin: operator new
  struct Chunk {
    void* memory;
    std::size_t size;
  };

  std::mutex mutex_;
  const std::size_t align_;
  std::size_t block_ = 0;        // set by the first allocation
  void* free_ = nullptr;         // freed blocks, each holding the next one's address
  char* next_ = nullptr;         // unused tail of the newest chunk
  char* end_ = nullptr;
  std::size_t total_ = 0;        // bytes in chunks
  std::vector<Chunk> chunks_;
};

// A standard allocator over a shared BlockPool (std::allocate_shared keeps a copy in each control block,
// so the pool lives as long as the last object made from it).
template <class T>
struct PoolAllocator {
  using value_type = T;
  explicit PoolAllocator(std::shared_ptr<BlockPool> p) noexcept : pool(std::move(p)) {}
  template <class U>
  PoolAllocator(const PoolAllocator<U>& other) noexcept : pool(other.pool) {}
  T* allocate(std::size_t n) { return static_cast<T*>(pool->allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { pool->deallocate(p, n * sizeof(T)); }
  template <class U>
  friend bool operator==(const PoolAllocator& a, const PoolAllocator<U>& b) { return a.pool == b.pool; }

  std::shared_ptr<BlockPool> pool;
};

}  // namespace sluice::routing
