#include "routing/huge_pages.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>

namespace sluice::routing {
namespace {

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

}  // namespace

void* huge_allocate(std::size_t bytes, std::size_t align) {
  if (bytes < kHugeMin) return ::operator new(bytes, std::align_val_t(align));
  // Map one huge page more than needed, then trim both ends so the block starts on a 2 MiB boundary:
  // only an aligned 2 MiB range can be backed by a huge page.
  const std::size_t size = round_up(bytes, kHugePage);
  void* raw = ::mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = round_up(start, kHugePage);
  if (aligned > start) ::munmap(raw, aligned - start);
  const std::uintptr_t end = start + size + kHugePage;
  if (end > aligned + size) ::munmap(reinterpret_cast<void*>(aligned + size), end - (aligned + size));
  // Advice only: without THP (or with it off) the pages are small and everything still works.
  ::madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
  return reinterpret_cast<void*>(aligned);
}

void huge_deallocate(void* p, std::size_t bytes, std::size_t align) noexcept {
  if (!p) return;
  if (bytes < kHugeMin) {
    ::operator delete(p, std::align_val_t(align));
    return;
  }
  ::munmap(p, round_up(bytes, kHugePage));
}

BlockPool::~BlockPool() {
  for (const Chunk& c : chunks_) huge_deallocate(c.memory, c.size, c.size < kHugeMin ? align_ : kHugePage);
}

void* BlockPool::allocate(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  if (block_ == 0 && bytes <= kFirstChunk / 64) block_ = round_up(std::max(bytes, sizeof(void*)), align_);
  if (bytes == 0 || round_up(bytes, align_) != block_) return ::operator new(bytes, std::align_val_t(align_));
  if (free_) {
    void* p = free_;
    free_ = *static_cast<void**>(p);
    return p;
  }
  if (next_ == nullptr || static_cast<std::size_t>(end_ - next_) < block_) {
    // 64 KiB, 64, 128, 256, 512, 512, 512 (2 MiB in all), then huge pages.
    const std::size_t size = total_ >= kHugePage ? kHugePage : std::clamp(total_, kFirstChunk, kMaxSmallChunk);
    chunks_.reserve(chunks_.size() + 1);  // so that push_back cannot throw once the chunk is allocated
    next_ = static_cast<char*>(huge_allocate(size, size < kHugeMin ? align_ : kHugePage));
    end_ = next_ + size;
    total_ += size;
    chunks_.push_back({next_, size});
  }
  void* p = next_;
  next_ += block_;
  return p;
}

void BlockPool::deallocate(void* p, std::size_t bytes) noexcept {
  if (!p) return;
  std::lock_guard lock(mutex_);
  if (bytes == 0 || round_up(bytes, align_) != block_) {
    ::operator delete(p, std::align_val_t(align_));
    return;
  }
  *static_cast<void**>(p) = free_;
  free_ = p;
}

}  // namespace sluice::routing
