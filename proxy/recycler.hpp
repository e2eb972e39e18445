// Recycled memory for the blocks a proxied request makes and frees again: the coroutine frames of the
// request path (proxy/pooled_frame.hpp) and the field storage of parsed heads (RecyclingAllocator).
//
// Why: a keep-alive request otherwise costs a dozen malloc/free pairs. Asio's own recycling allocator
// keeps two blocks per thread of at most 1020 bytes (4 * UCHAR_MAX), and most of the request path's frames
// are larger, so they went to malloc every time.
//
// One cache per thread: a stack of free blocks per 64-byte size class up to kMaxRecycled bytes, each holding at
// most kPerClass blocks (at c64 one worker has about 64 requests' frames in flight; HTTP/2 at h2load -c16
// -m10 has 160 streams, each with a few blocks of a class: its stream, nghttp2's stream on both sides) and
// kMaxCachedBytes in all; past either cap a freed block goes back to the heap. A block freed on another thread than the one that made it joins that
// thread's cache, which is safe: every block comes from ::operator new. Larger blocks bypass the cache.
// Blocks cached when a thread ends are freed then.
#pragma once

#include <cstddef>
#include <memory>

namespace sluice::proxy::recycler {

inline constexpr std::size_t kGranule = 64;
inline constexpr std::size_t kMaxRecycled = 8 * 1024;
inline constexpr std::size_t kPerClass = 512;
inline constexpr std::size_t kMaxCachedBytes = 2 * 1024 * 1024;

// `size` bytes aligned for any object (__STDCPP_DEFAULT_NEW_ALIGNMENT__). Throws std::bad_alloc. Any thread.
void* allocate(std::size_t size);
// Gives back a block from allocate(`size`), `size` the same. Any thread.
void deallocate(void* p, std::size_t size) noexcept;

}  // namespace sluice::proxy::recycler

namespace sluice::proxy {

// A stateless std allocator over the recycler, for Beast's basic_fields and parsers.
template <class T>
struct RecyclingAllocator {
  using value_type = T;
  RecyclingAllocator() noexcept = default;
  template <class U>
  RecyclingAllocator(const RecyclingAllocator<U>&) noexcept {}
  T* allocate(std::size_t n) { return static_cast<T*>(recycler::allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { recycler::deallocate(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const RecyclingAllocator<U>&) const noexcept { return true; }
};

}  // namespace sluice::proxy
