#include "proxy/h2_alloc.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <new>

#include "proxy/recycler.hpp"

namespace sluice::proxy {
namespace {

// The block's size lives in front of it; the header keeps the recycler's alignment for the caller.
constexpr std::size_t kHeader = __STDCPP_DEFAULT_NEW_ALIGNMENT__;
static_assert(kHeader >= sizeof(std::size_t));

std::size_t& size_of(void* user) { return *reinterpret_cast<std::size_t*>(static_cast<char*>(user) - kHeader); }

void* h2_malloc(std::size_t size, void*) {
  void* block = nullptr;
  try {
    block = recycler::allocate(size + kHeader);
  } catch (const std::bad_alloc&) {
    return nullptr;  // nghttp2 answers NGHTTP2_ERR_NOMEM
  }
  *static_cast<std::size_t*>(block) = size;
  return static_cast<char*>(block) + kHeader;
}

void h2_free(void* p, void*) {
  if (!p) return;
  recycler::deallocate(static_cast<char*>(p) - kHeader, size_of(p) + kHeader);
}

void* h2_calloc(std::size_t n, std::size_t size, void* user) {
  if (size != 0 && n > static_cast<std::size_t>(-1) / size) return nullptr;
  void* p = h2_malloc(n * size, user);
  if (p) std::memset(p, 0, n * size);
  return p;
}

void* h2_realloc(void* p, std::size_t size, void* user) {
  if (!p) return h2_malloc(size, user);
  if (size == 0) {
    h2_free(p, user);
    return nullptr;
  }
  const std::size_t old = size_of(p);
  if (size <= old) return p;  // the header keeps the size the block was made with, which frees it right
  void* fresh = h2_malloc(size, user);
  if (!fresh) return nullptr;
  std::memcpy(fresh, p, old);
  h2_free(p, user);
  return fresh;
}

nghttp2_mem g_mem{nullptr, &h2_malloc, &h2_free, &h2_calloc, &h2_realloc};

}  // namespace

nghttp2_mem* h2_recycling_mem() { return &g_mem; }

}  // namespace sluice::proxy
