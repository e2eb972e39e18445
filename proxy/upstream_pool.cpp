#include "proxy/upstream_pool.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace sluice::proxy {
namespace {

// Servers close idle keep-alive connections after seconds (nginx 75 s, Node 5 s, Go 90 s), never within this.
constexpr auto kTrustIdleFor = std::chrono::milliseconds(250);
// A connection idle this long is below the pool's working set (the most recently used is taken first): its
// read buffer (and a TLS connection's record buffers) go back to the heap until it is taken again, so that a
// pool grown by a burst holds sockets only, not 16 KiB each (over 100 KiB over TLS), until the idle timeout
// closes them.
constexpr auto kColdAfter = std::chrono::seconds(2);

// True when the idle socket has neither been closed by the peer nor received stray bytes.
bool still_idle(UpstreamConnection& conn) {
  if (conn.buffer.size() != 0) return false;
  auto& socket = conn.stream.transport().socket();
  if (!socket.is_open()) return false;
  char byte;
  const auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;                                          // orderly close
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;        // nothing to read: alive
  return false;                                                      // unexpected bytes: unusable
}

void close_connection(UpstreamConnection& conn) {
  boost::system::error_code ignored;
  conn.stream.transport().socket().shutdown(tcp::socket::shutdown_both, ignored);
  conn.stream.transport().socket().close(ignored);
}

}  // namespace

std::unique_ptr<UpstreamConnection> UpstreamPool::take(const std::string& key) {
  auto it = idle_.find(key);
  if (it == idle_.end()) return nullptr;
  auto& list = it->second;
  while (!list.empty()) {
    auto conn = std::move(list.back());
    list.pop_back();
    // A connection idle for a moment only is taken as it is (under load that is every reuse, and the peek
    // would cost a syscall per request); one idle longer may have been closed by the peer: look first.
    if (std::chrono::steady_clock::now() - conn->idle_since < kTrustIdleFor || still_idle(*conn)) {
      conn->reserve_buffer();
      return conn;
    }
    close_connection(*conn);
  }
  return nullptr;
}

void UpstreamPool::give_back(std::unique_ptr<UpstreamConnection> conn, std::chrono::steady_clock::time_point now) {
  auto& list = idle_[conn->pool_key];
  if (list.size() >= cfg_.max_idle_per_endpoint) {
    close_connection(*conn);
    return;
  }
  conn->idle_since = now;
  list.push_back(std::move(conn));
}

void UpstreamPool::sweep(std::chrono::steady_clock::time_point now) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& list = it->second;
    std::erase_if(list, [&](auto& conn) {
      if (now - conn->idle_since < cfg_.idle_timeout) {
        if (now - conn->idle_since >= kColdAfter) conn->release_buffers();
        return false;
      }
      close_connection(*conn);
      return true;
    });
    it = list.empty() ? idle_.erase(it) : std::next(it);
  }
}

void UpstreamPool::forget_except(const std::unordered_set<std::string>& live_keys) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    if (live_keys.contains(it->first)) {
      ++it;
      continue;
    }
    for (auto& conn : it->second) close_connection(*conn);
    it = idle_.erase(it);
  }
}

void UpstreamPool::close_all() {
  for (auto& [key, list] : idle_) {
    for (auto& conn : list) close_connection(*conn);
  }
  idle_.clear();
}

std::size_t UpstreamPool::idle_count() const {
  std::size_t n = 0;
  for (const auto& [key, list] : idle_) n += list.size();
  return n;
}

}  // namespace sluice::proxy
