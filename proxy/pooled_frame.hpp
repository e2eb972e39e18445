// Coroutine frames of the request path from the recycler (proxy/recycler.hpp) instead of malloc.
//
// Asio allocates every awaitable's frame through its own recycling allocator, which keeps at most two
// blocks of at most 1020 bytes per thread; the HTTP/1.1 request path nests about ten coroutines whose
// frames are mostly larger (GCC keeps every local that lives across a co_await in the frame), so each
// request cost about nine malloc/free pairs for frames alone. Here the frames of HttpSession's member
// coroutines and of the coroutines taking a Worker& first (the upstream side, proxy/upstream_connect.hpp)
// get a promise type that is Asio's own plus an allocation function: std::coroutine_traits picks it by
// the coroutine's parameter types, so the coroutines themselves are written as before.
//
// The promise adds no data member, so its layout and alignment are those of Asio's awaitable_frame and
// Asio's handles to it (coroutine_handle<awaitable_frame>::from_promise) point at the same frame.
#pragma once

#include <coroutine>
#include <cstddef>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "proxy/recycler.hpp"

namespace sluice::proxy {

class HttpSession;
class Worker;

template <class T>
class PooledFrame : public boost::asio::detail::awaitable_frame<T, boost::asio::any_io_executor> {
  using base = boost::asio::detail::awaitable_frame<T, boost::asio::any_io_executor>;

 public:
  static void* operator new(std::size_t size) { return recycler::allocate(size); }
  static void operator delete(void* p, std::size_t size) noexcept { recycler::deallocate(p, size); }

  using base::await_transform;

  // `co_await` of another awaitable: Asio's awaitable::await_suspend takes a handle typed with its own
  // promise, so the handle to this frame is passed as one (the same frame: the promise is Asio's at the
  // same address, see above).
  template <typename U>
  auto await_transform(boost::asio::awaitable<U, boost::asio::any_io_executor> a) const {
    struct Awaiter {
      boost::asio::awaitable<U, boost::asio::any_io_executor> a;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<PooledFrame> h) {
        a.await_suspend(std::coroutine_handle<base>::from_address(h.address()));
      }
      U await_resume() { return a.await_resume(); }
    };
    return Awaiter{base::await_transform(std::move(a))};
  }
};

static_assert(sizeof(PooledFrame<void>) == sizeof(boost::asio::detail::awaitable_frame<void, boost::asio::any_io_executor>));
static_assert(alignof(PooledFrame<int>) == alignof(boost::asio::detail::awaitable_frame<int, boost::asio::any_io_executor>));

}  // namespace sluice::proxy

// Member coroutines of HttpSession (the implicit object parameter comes first).
template <class T, class... Args>
struct std::coroutine_traits<boost::asio::awaitable<T, boost::asio::any_io_executor>, sluice::proxy::HttpSession&,
                             Args...> {
  using promise_type = sluice::proxy::PooledFrame<T>;
};

// Free coroutines taking the worker first (connect_upstream, read_upstream_response_head, ...).
template <class T, class... Args>
struct std::coroutine_traits<boost::asio::awaitable<T, boost::asio::any_io_executor>, sluice::proxy::Worker&,
                             Args...> {
  using promise_type = sluice::proxy::PooledFrame<T>;
};
