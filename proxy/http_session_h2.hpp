// What an HTTP/1.1 request forwarded over HTTP/2 holds while it runs (http_session_h2.cpp): the upstream
// connection and stream, and the wake-up the stream's news arrive by. Private to http_session*.cpp.
// Worker thread only.
#pragma once

#include <chrono>
#include <memory>

#include <boost/asio/steady_timer.hpp>

#include "proxy/h2_upstream.hpp"
#include "proxy/http_session.hpp"

namespace sluice::proxy {

// Wakes the request coroutine when its call has news (H2Call::notify).
struct H2Waker {
  explicit H2Waker(net::io_context& ioc) : timer(ioc) {}
  net::steady_timer timer;
  bool woken = false;

  void notify() {
    woken = true;
    timer.cancel();
  }
  // True when woken, false on timeout.
  net::awaitable<bool> wait(std::chrono::steady_clock::duration timeout) {
    if (woken) {
      woken = false;
      co_return true;
    }
    timer.expires_after(timeout);
    auto [ec] = co_await timer.async_wait(use_nothrow);
    woken = false;
    co_return ec == net::error::operation_aborted;
  }
};

struct HttpSession::H2Exchange {
  explicit H2Exchange(net::io_context& ioc) : waker(ioc) {}
  H2Waker waker;
  std::shared_ptr<H2Upstream> up;
  std::shared_ptr<H2Call> call;
  bool use_http1 = false;
  // The stream must not wake a coroutine that is gone, and an unfinished one is reset.
  ~H2Exchange() {
    if (call && up) {
      if (!call->closed) up->cancel(*call, NGHTTP2_CANCEL);
      call->notify = nullptr;
    }
  }
};

}  // namespace sluice::proxy
