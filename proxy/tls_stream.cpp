#include "proxy/tls_stream.hpp"

#include <sys/socket.h>

#include <openssl/bio.h>
#include <openssl/err.h>

#include <cerrno>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/ssl/error.hpp>

#include "proxy/recycler.hpp"

namespace sluice::proxy {
namespace tls_detail {
namespace {

// Input: room for two full records (16 KiB of plaintext plus at most 2 KiB of overhead each), so that one
// recv() can take what the peer sent back to back. A read is only started with a record's worth of room.
constexpr std::size_t kInputCapacity = 40 * 1024;
constexpr std::size_t kInputRoom = 18 * 1024;
constexpr std::size_t kOutputInitial = 18 * 1024;

Core* core_of(BIO* bio) { return static_cast<Core*>(BIO_get_data(bio)); }

// OpenSSL reads records from the input buffer; an empty one means "wait for the socket" (a retry).
int bio_read(BIO* bio, char* data, int len) {
  BIO_clear_retry_flags(bio);
  Core& c = *core_of(bio);
  const std::size_t have = c.in_end - c.in_begin;
  if (have == 0) {
    BIO_set_retry_read(bio);
    return -1;
  }
  const std::size_t n = std::min(have, static_cast<std::size_t>(len));
  std::memcpy(data, c.in.get() + c.in_begin, n);
  c.in_begin += n;
  return static_cast<int>(n);
}

// OpenSSL's records are kept until the operation sends them: the buffer grows to the largest write's.
int bio_write(BIO* bio, const char* data, int len) {
  BIO_clear_retry_flags(bio);
  Core& c = *core_of(bio);
  const auto n = static_cast<std::size_t>(len);
  if (c.out_sent == c.out_end) c.out_sent = c.out_end = 0;
  if (c.out_end + n > c.out_capacity) {
    const std::size_t unsent = c.out_end - c.out_sent;
    const std::size_t capacity = std::max({unsent + n, 2 * c.out_capacity, kOutputInitial});
    auto bigger = std::make_unique<char[]>(capacity);
    if (unsent != 0) std::memcpy(bigger.get(), c.out.get() + c.out_sent, unsent);
    c.out = std::move(bigger);
    c.out_capacity = capacity;
    c.out_sent = 0;
    c.out_end = unsent;
  }
  std::memcpy(c.out.get() + c.out_end, data, n);
  c.out_end += n;
  return len;
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

BIO_METHOD* bio_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "sluice tls buffers");
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

}  // namespace

Core::Core(tcp::socket socket, ssl::context& ctx) : next(std::move(socket)), timer(next.get_executor()) {
  ssl = SSL_new(ctx.native_handle());
  if (!ssl) {
    throw boost::system::system_error(static_cast<int>(ERR_get_error()), net::error::get_ssl_category(), "SSL_new");
  }
  // Partial writes: a write completes once some records went (Asio's mode too). No SSL_MODE_RELEASE_BUFFERS:
  // OpenSSL would free and allocate its record buffers again for every record.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  BIO* bio = BIO_new(bio_method());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl, bio, bio);
}

Core::~Core() {
  // A connection closed without close_notify counts as "bad" to SSL_free, which then makes its session
  // unusable for resumption (ssl_clear_bad_session). Closing an idle keep-alive connection is not a failure
  // (nginx's quiet shutdown does the same); a connection that failed had its session dropped at the alert.
  SSL_set_shutdown(ssl, SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
  SSL_free(ssl);
}

void Core::clear_errors() {
  // ERR_clear_error walks all of the thread's error slots; peeking is a load. The queue is empty nearly
  // always (each failure below takes its error out and clears the rest).
  if (ERR_peek_error() != 0) ERR_clear_error();
}

Want Core::classify(int ret, boost::system::error_code& ec) {
  if (ret > 0) return Want::done;
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      return Want::read;
    case SSL_ERROR_WANT_WRITE:
      return Want::write;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      ec = net::error::eof;
      return Want::failed;
    default: {
      // As Asio's engine reports it: the library's reason, or "unspecified system error" without one.
      const unsigned long e = ERR_get_error();
      ERR_clear_error();
      ec = e != 0 ? boost::system::error_code(static_cast<int>(e), net::error::get_ssl_category())
                  : boost::system::error_code(ssl::error::unspecified_system_error);
      return Want::failed;
    }
  }
}

bool Core::send_output(boost::system::error_code& ec) {
  const int fd = next.socket().native_handle();
  while (out_sent < out_end) {
    const ssize_t n = ::send(fd, out.get() + out_sent, out_end - out_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      out_sent += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return false;
    } else {
      ec = boost::system::error_code(n < 0 ? errno : EPIPE, boost::system::system_category());
      return false;
    }
  }
  out_sent = out_end = 0;
  return true;
}

void Core::release_buffers() {
  if (reading || in_begin != in_end || has_output()) return;
  in.reset();
  in_begin = in_end = 0;
  out.reset();
  out_capacity = out_sent = out_end = 0;
  flat.reset();
  SSL_free_buffers(ssl);  // refuses (returns 0) while OpenSSL holds part of a record
}

net::mutable_buffer Core::input_space() {
  if (!in) in = std::make_unique<char[]>(kInputCapacity);
  if (in_begin == in_end) {
    in_begin = in_end = 0;
  } else if (kInputCapacity - in_end < kInputRoom) {
    std::memmove(in.get(), in.get() + in_begin, in_end - in_begin);
    in_end -= in_begin;
    in_begin = 0;
  }
  return {in.get() + in_end, kInputCapacity - in_end};
}

boost::system::error_code Core::socket_error(boost::system::error_code ec) const {
  if (timed_out) return beast::error::timeout;
  // An end of stream before the peer's close_notify may be a truncation attack (Asio's reading).
  if (ec == net::error::eof && (SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) == 0) return ssl::error::stream_truncated;
  return ec;
}

void Core::begin_wait(Expiry& e) {
  e.pending = true;
  if (e.at < armed) arm(e.at);
}

void Core::arm(clock::time_point at) {
  timer.expires_at(at);  // cancels a pending wait, whose handler then sees an old generation
  armed = at;
  const unsigned g = ++generation;
  timer.async_wait(net::bind_allocator(RecyclingAllocator<void>(), [s = self.lock(), g](boost::system::error_code ec) {
    s->fired(g, ec);
  }));
}

void Core::fired(unsigned g, boost::system::error_code ec) {
  if (g != generation) return;
  armed = clock::time_point::max();
  if (ec) return;
  const auto now = clock::now();
  if ((read_expiry.pending && read_expiry.at <= now) || (write_expiry.pending && write_expiry.at <= now)) {
    timed_out = true;
    boost::system::error_code ignored;
    next.socket().close(ignored);  // as Beast's timeout does: the pending operations complete with an error
    return;
  }
  // Waits that began under a later expiry, or whose expiry moved: wait again for the earliest one.
  auto later = clock::time_point::max();
  if (read_expiry.pending) later = std::min(later, read_expiry.at);
  if (write_expiry.pending) later = std::min(later, write_expiry.at);
  if (later != clock::time_point::max()) arm(later);
}

}  // namespace tls_detail

TlsStream::TlsStream(tcp::socket socket, ssl::context& ctx)
    : core_(std::make_shared<tls_detail::Core>(std::move(socket), ctx)) {
  core_->self = core_;
}

TlsStream::~TlsStream() {
  if (!core_) return;
  // The timer's handler may keep the state a little longer; the connection ends now.
  boost::system::error_code ignored;
  core_->next.socket().close(ignored);
  core_->timer.cancel();
}

}  // namespace sluice::proxy
