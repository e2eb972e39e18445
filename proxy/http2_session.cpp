// The connection side of an HTTP/2 session: nghttp2 set-up, the read loop, the writer, drain and shutdown.
// The request streams are in http2_stream.cpp.
#include "proxy/http2_session.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "proxy/h2_alloc.hpp"
#include "proxy/h2_options.hpp"
#include "proxy/http2_stream.hpp"
#include "proxy/recycler.hpp"
#include "log/logger.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kWriteChunk = 64 * 1024;  // frames gathered into one write
constexpr int kSyncBursts = 4;                   // bursts written in a row before the next is posted

Http2Session* of(void* p) { return static_cast<Http2Session*>(p); }

}  // namespace

Http2Session::Http2Session(Worker& worker, std::shared_ptr<const ListenerInfo> listener, Stream& stream,
                           beast::flat_buffer& already_read, std::string client_ip)
    : worker_(worker),
      listener_(std::move(listener)),
      stream_(stream),
      buffer_(already_read),
      client_ip_(std::move(client_ip)),
      quiet_(worker.ioc()),
      sweep_(worker.ioc()) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_frame_callback(cb, &Http2Session::on_begin_frame);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &Http2Session::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback2(cb, &Http2Session::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &Http2Session::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &Http2Session::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &Http2Session::on_stream_close);
  nghttp2_session_callbacks_set_on_frame_send_callback(cb, &Http2Session::on_frame_send);
  nghttp2_option* opt = new_h2_server_options();
  nghttp2_session_server_new3(&session_, cb, this, opt, h2_recycling_mem());
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);

  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<std::uint32_t>(worker_.settings().limits.max_request_header_bytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  worker_.stats().h2_connections.add();
}

Http2Session::~Http2Session() { nghttp2_session_del(session_); }

net::awaitable<void> Http2Session::run() {
  auto self = shared_from_this();
  const auto idle = worker_.settings().timeouts.idle;
  bool ok = buffer_.size() == 0 ||
            feed(static_cast<const char*>(buffer_.data().data()), buffer_.size());
  buffer_.consume(buffer_.size());
  bool clean = ok;  // the peer broke no rule (a read error or EOF is not one)
  while (ok && !closed_) {
    kick();
    // Nothing more to read (GOAWAY exchanged and no stream left): the writer ends the connection.
    if (!nghttp2_session_want_read(session_)) break;
    // Idle: no stream open. With streams open, they have their own deadlines upstream. The connection's
    // deadline (Stream::set_deadline: one lazily moved timer), not a timer wait per read; a short read marks
    // the socket drained, so that the next read waits for readiness instead of trying recv() first.
    stream_.set_deadline_after(streams_.empty() ? idle : std::chrono::steady_clock::duration(std::chrono::hours(1)));
    auto [ec, n] = co_await stream_.async_read_some(buffer_.prepare(kReadChunk), use_nothrow);
    if (ec) break;
    if (n < kReadChunk) stream_.mark_drained();
    buffer_.commit(n);
    ok = clean = feed(static_cast<const char*>(buffer_.data().data()), buffer_.size());
    buffer_.consume(buffer_.size());
  }
  // Let what is queued (a GOAWAY, the last frames) go out, for a bounded time, then end everything.
  kick();
  const auto deadline = std::chrono::steady_clock::now() + (clean ? idle : std::chrono::seconds(1));
  while (writing_ && !closed_ && std::chrono::steady_clock::now() < deadline) {
    quiet_.expires_at(deadline);
    co_await quiet_.async_wait(use_nothrow);
  }
  shut();
  while (live_ > 0) {
    quiet_.expires_after(std::chrono::seconds(1));
    co_await quiet_.async_wait(use_nothrow);
  }
}

bool Http2Session::feed(const char* data, std::size_t size) {
  const auto rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(data), size);
  if (rv < 0) {
    log::debug("http2 from " + client_ip_ + ": " + nghttp2_strerror(static_cast<int>(rv)));
    if (rv != NGHTTP2_ERR_BAD_CLIENT_MAGIC) nghttp2_session_terminate_session(session_, NGHTTP2_PROTOCOL_ERROR);
    kick();
    return false;
  }
  for (auto& [id, n] : unclaimed_) nghttp2_session_consume(session_, id, n);
  unclaimed_.clear();
  auto ready = std::move(ready_);
  ready_.clear();
  for (auto& s : ready) start_stream(std::move(s));
  return true;
}

void Http2Session::start_stream(std::shared_ptr<H2Stream> s) {
  if (!idle_runners_.empty()) {
    handed_.push_back(std::move(s));
    // Posted: the runner must not run inside mem_recv's caller (nor before the rest of the read is fed).
    post_recycled(worker_.ioc(), [w = std::move(idle_runners_.back())]() mutable { w.complete({}); });
    idle_runners_.pop_back();
    return;
  }
  ++live_;
  net::co_spawn(worker_.ioc(), stream_runner(std::move(s)), net::detached);
}

net::awaitable<void> Http2Session::stream_runner(std::shared_ptr<H2Stream> first) {
  auto self = shared_from_this();
  struct Live {
    Http2Session& h;
    ~Live() {
      --h.live_;
      h.quiet_.cancel();
    }
  } live{*this};
  auto s = std::move(first);
  for (;;) {
    co_await handle_stream(std::move(s));
    // The next stream: one handed over already, else idle until start_stream hands one (or the
    // connection ends, or enough runners idle already).
    while (handed_.empty()) {
      if (closed_ || idle_runners_.size() >= kIdleRunners) co_return;
      co_await net::async_initiate<decltype(use_nothrow), void(boost::system::error_code)>(
          [this](auto handler) { idle_runners_.emplace_back(std::move(handler)); }, use_nothrow);
    }
    s = std::move(handed_.back());
    handed_.pop_back();
  }
}

void Http2Session::kick() {
  if (writing_ || closed_) return;
  if (!nghttp2_session_want_write(session_)) {
    if (!nghttp2_session_want_read(session_)) shut();
    return;
  }
  writing_ = true;
  ++live_;
  // Posted, not run now: the streams woken by the same read (or the same upstream read) queue their frames
  // first, and one write carries them all.
  post_recycled(worker_.ioc(), [self = shared_from_this()] { self->write_some(); });
}

void Http2Session::write_some() {
  // Bursts that the socket takes at once follow each other here; a few in a row, then the next is posted,
  // so that a fast reader of a long response does not keep the worker from its other connections.
  for (int burst = 0;; ++burst) {
    if (burst == kSyncBursts) {
      post_recycled(worker_.ioc(), [self = shared_from_this()] { self->write_some(); });
      return;
    }
    out_.clear();
    if (!closed_) {
      for (const auto id : answered_early_) {
        if (streams_.count(id)) nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
      }
      answered_early_.clear();
      while (out_.size() < kWriteChunk) {
        const std::uint8_t* data = nullptr;
        const auto n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) {
          log::debug("http2 to " + client_ip_ + ": " + nghttp2_strerror(static_cast<int>(n)));
          closed_ = true;
          break;
        }
        if (n == 0) break;
        out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      }
    }
    if (out_.empty() || closed_) {
      writing_ = false;
      --live_;
      if (closed_ || (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_))) shut();
      quiet_.cancel();
      return;
    }
    if (!stream_.write_or_start(net::buffer(out_), worker_.settings().timeouts.idle,
                                [self = shared_from_this()](boost::system::error_code ec) {
                                  if (ec) self->closed_ = true;
                                  self->write_some();  // the next burst, or the end of this writer's turn
                                })) {
      return;
    }
  }
}

void Http2Session::drain() {
  if (draining_ || closed_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
  kick();
}

void Http2Session::abort() { shut(); }

void Http2Session::shut() {
  const bool was_closed = closed_;
  closed_ = true;
  boost::system::error_code ignored;
  if (!was_closed) stream_.transport().socket().close(ignored);
  for (auto& [id, s] : streams_) {
    if (s->upstream) s->upstream->stream.transport().socket().close(ignored);
    s->notify();
  }
  // Idle runners end (a runner woken with a stream handed to it serves it first, which ends at once now).
  for (auto& w : idle_runners_) {
    post_recycled(worker_.ioc(), [w = std::move(w)]() mutable { w.complete(net::error::operation_aborted); });
  }
  idle_runners_.clear();
  quiet_.cancel();
  sweep_.cancel();
  sweep_at_ = std::chrono::steady_clock::time_point::min();  // no more arming: every wait returns at once
}

// --- nghttp2 callbacks: they record, and never call into the session.

int Http2Session::on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* p) {
  if (hd->type != NGHTTP2_HEADERS || !(hd->stream_id & 1)) return 0;
  auto* self = of(p);
  const std::int32_t id = hd->stream_id;
  if (id > self->last_client_stream_) {
    // A new stream: the odd ids it skipped are closed for good (RFC 9113 5.1.1).
    if (id > self->last_client_stream_ + 2) {
      if (self->skipped_.size() == kMaxSkippedRanges) self->skipped_.erase(self->skipped_.begin());
      self->skipped_.emplace_back(self->last_client_stream_ + 2, id - 2);
    }
    self->last_client_stream_ = id;
    return 0;
  }
  // A HEADERS below the last stream id: a trailer of an open (or recently closed) stream is fine, but one
  // on an id the client skipped opens a stream that can no longer be opened, a connection error
  // (PROTOCOL_ERROR, 5.1.1). nghttp2 ignores such a block, as it cannot tell it from a late frame of a
  // stream it closed; the skipped ranges can.
  for (const auto& [from, to] : self->skipped_) {
    if (id >= from && id <= to) return NGHTTP2_ERR_CALLBACK_FAILURE;  // feed() sends GOAWAY(PROTOCOL_ERROR)
  }
  return 0;
}

int Http2Session::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* p) {
  auto* self = of(p);
  self->headers_id_ = frame->hd.stream_id;
  self->headers_stream_ = nullptr;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    // Trailers of an open stream.
    auto it = self->streams_.find(frame->hd.stream_id);
    if (it != self->streams_.end()) self->headers_stream_ = it->second.get();
    return 0;
  }
  // From the recycler: a stream object per request, made and freed at the request rate.
  auto s = std::allocate_shared<H2Stream>(RecyclingAllocator<H2Stream>{}, self->worker_.ioc(), frame->hd.stream_id);
  s->fields.reserve(kFieldsReserve);  // one allocation for a usual head instead of growing by doubling
  self->headers_stream_ = s.get();
  self->streams_[frame->hd.stream_id] = std::move(s);
  return 0;
}

int Http2Session::on_header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name, nghttp2_rcbuf* value,
                            std::uint8_t, void* p) {
  auto* self = of(p);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != self->headers_id_ || !self->headers_stream_) {
    return 0;
  }
  auto& s = *self->headers_stream_;
  const std::string_view n = h2_view(name);
  const std::string_view v = h2_view(value);
  const auto& limits = self->worker_.settings().limits;
  if (frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
    // Trailers (nghttp2 has checked them: no pseudo-headers, END_STREAM set). They count against the same
    // limits as the head; beyond them the stream is reset, as an oversized head cannot be answered 431 now.
    s.header_bytes += n.size() + v.size() + 4;
    if (s.header_bytes > limits.max_request_header_bytes || s.trailers_in.size() >= limits.max_request_headers) {
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    if (!s.finished) s.trailers_in.push_back({std::string(n), std::string(v)});
    return 0;
  }
  // The HTTP/1.1 limits, counted as the HTTP/1.1 head would be ("name: value\r\n").
  s.header_bytes += n.size() + v.size() + 4;
  if (s.header_bytes > limits.max_request_header_bytes ||
      (!n.empty() && n[0] != ':' && s.fields.size() >= limits.max_request_headers)) {
    s.too_large = true;
    return 0;
  }
  if (n == ":method") s.line.method = v;
  else if (n == ":path") s.line.path = v;
  else if (n == ":authority") s.line.authority = v;
  else if (n == ":scheme") s.line.scheme = v;
  else if (!n.empty() && n[0] != ':') h2_add_received(s.fields, name, n, v);
  return 0;
}

int Http2Session::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
  auto* self = of(p);
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it == self->streams_.end()) return 0;
  auto& s = it->second;
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) s->end_stream = true;
  if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    self->ready_.push_back(s);
  }
  s->notify();
  return 0;
}

int Http2Session::on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                                std::size_t len, void* p) {
  auto* self = of(p);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end() || it->second->finished) {
    self->unclaimed_.emplace_back(id, len);
    return 0;
  }
  it->second->body_in.append(reinterpret_cast<const char*>(data), len);
  it->second->notify();
  return 0;
}

int Http2Session::on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* p) {
  auto* self = of(p);
  if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
      !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    return 0;
  }
  auto it = self->streams_.find(frame->hd.stream_id);
  if (it != self->streams_.end() && !it->second->end_stream) self->answered_early_.push_back(frame->hd.stream_id);
  return 0;
}

int Http2Session::on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error, void* p) {
  auto* self = of(p);
  auto it = self->streams_.find(id);
  if (it == self->streams_.end()) return 0;
  it->second->closed = true;
  it->second->close_error = error;
  it->second->notify();
  if (self->headers_stream_ == it->second.get()) self->headers_stream_ = nullptr;
  self->streams_.erase(it);
  return 0;
}

}  // namespace sluice::proxy
