// A suspended coroutine's completion handler, type-erased, for waits completed by hand (an HTTP/2 stream's
// wake-up, an idle stream runner's next stream) rather than by an I/O object. Worker thread only.
#pragma once

#include <new>
#include <type_traits>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

#include "proxy/recycler.hpp"

namespace sluice::proxy {

// `handler` with the recycler as its associated allocator: the operation Asio allocates for a post or a
// write of it comes from the recycler. (Asio's own cache keeps two blocks per thread; an HTTP/2 connection
// has more posts and writes in flight, whose operations otherwise went to malloc, and its cache's search
// cost as much again.) A nested allocator_type rather than bind_allocator: a binder specialises the
// handler's associated executor too, and post() then wraps it in a work_dispatcher (a work guard and a
// second dispatch per post).
template <class F>
struct Recycled {
  F f;
  using allocator_type = RecyclingAllocator<void>;
  allocator_type get_allocator() const noexcept { return {}; }
  template <class... Args>
  void operator()(Args&&... args) {
    f(std::forward<Args>(args)...);
  }
};

template <class F>
Recycled<std::decay_t<F>> recycled(F&& f) {
  return {std::forward<F>(f)};
}

// Posts `f` to `ioc` with its operation from the recycler.
template <class F>
void post_recycled(boost::asio::io_context& ioc, F&& f) {
  boost::asio::post(ioc, recycled(std::forward<F>(f)));
}

// One recycled block per wait; the handler is destroyed unrun when the owner goes without completing it (an
// io_context torn down with the completion's post pending). (Asio 1.81's any_completion_handler would do,
// but it wraps itself when moved from a lambda capture, recursing until the stack runs out.)
class StreamWaiter {
 public:
  StreamWaiter() = default;
  template <class Handler>
  explicit StreamWaiter(Handler&& h) : impl_(make(std::forward<Handler>(h))) {}
  StreamWaiter(StreamWaiter&& o) noexcept : impl_(std::exchange(o.impl_, nullptr)) {}
  StreamWaiter& operator=(StreamWaiter&& o) noexcept {
    if (this != &o) {
      reset();
      impl_ = std::exchange(o.impl_, nullptr);
    }
    return *this;
  }
  ~StreamWaiter() { reset(); }
  explicit operator bool() const { return impl_ != nullptr; }
  // Runs the handler once (it resumes the coroutine); empty afterwards.
  void complete(boost::system::error_code ec) { std::exchange(impl_, nullptr)->complete(ec); }

 private:
  struct Base {
    virtual void complete(boost::system::error_code ec) = 0;  // frees itself, then runs the handler
    virtual void destroy() = 0;                               // frees itself without running it
   protected:
    ~Base() = default;
  };
  template <class Handler>
  struct Impl final : Base {
    explicit Impl(Handler&& h) : handler(std::move(h)) {}
    Handler handler;
    void complete(boost::system::error_code ec) override {
      Handler h = std::move(handler);
      destroy();
      std::move(h)(ec);
    }
    void destroy() override {
      this->~Impl();
      recycler::deallocate(this, sizeof(Impl));
    }
  };
  template <class Handler>
  static Base* make(Handler&& h) {
    using H = std::decay_t<Handler>;
    return new (recycler::allocate(sizeof(Impl<H>))) Impl<H>(std::move(h));
  }
  void reset() {
    if (impl_) std::exchange(impl_, nullptr)->destroy();
  }
  Base* impl_ = nullptr;
};

}  // namespace sluice::proxy
