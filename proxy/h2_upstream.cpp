#include "proxy/h2_upstream.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "log/logger.hpp"
#include "proxy/h2_alloc.hpp"
#include "proxy/h2_options.hpp"
#include "proxy/recycler.hpp"
#include "proxy/stream_waiter.hpp"
#include "proxy/upstream_connect.hpp"
#include "proxy/worker.hpp"
#include "routing/snapshot.hpp"

namespace sluice::proxy {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kWriteChunk = 64 * 1024;
constexpr int kSyncBursts = 4;  // bursts written in a row before the next is posted
// ALPN offers, wire format.
constexpr std::string_view kAlpnH2{"\x02h2", 3};
constexpr std::string_view kAlpnAuto{"\x02h2\x08http/1.1", 12};

H2Upstream* of(void* p) { return static_cast<H2Upstream*>(p); }

}  // namespace

H2Upstream::H2Upstream(Worker& worker, std::unique_ptr<UpstreamConnection> conn)
    : worker_(worker), conn_(std::move(conn)), settled_timer_(std::make_shared<net::steady_timer>(worker.ioc())) {
  nghttp2_session_callbacks* cb = nullptr;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, &H2Upstream::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback2(cb, &H2Upstream::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, &H2Upstream::on_frame_recv);
  nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, &H2Upstream::on_frame_not_send);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, &H2Upstream::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, &H2Upstream::on_stream_close);
  nghttp2_option* opt = new_h2_client_options();
  nghttp2_session_client_new3(&session_, cb, this, opt, h2_recycling_mem());
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
}

H2Upstream::~H2Upstream() { nghttp2_session_del(session_); }

void H2Upstream::start() {
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      // We send no RFC 7540 priority signals, and say so (RFC 9218), as nghttpx does to its backends: an
      // nghttp2-based backend then keeps no closed streams of ours for a priority tree.
      {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<std::uint32_t>(kStreamWindow)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<std::uint32_t>(worker_.settings().limits.max_response_header_bytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kConnectionWindow);
  settled_timer_->expires_after(worker_.settings().timeouts.connect);
  net::co_spawn(worker_.ioc(), read_loop(), net::detached);
  kick();
}

net::awaitable<void> H2Upstream::wait_settled() {
  if (settled()) co_return;
  // Every waiter waits on the one timer, armed once by start(): re-arming it would cancel the others.
  auto timer = settled_timer_;
  co_await timer->async_wait(use_nothrow);
}

bool H2Upstream::accepts_streams() const {
  if (closed_ || goaway_ || !settled_) return false;
  const auto limit = nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return calls_.size() < limit && nghttp2_session_get_next_stream_id(session_) < (1 << 30);
}

std::shared_ptr<H2Call> H2Upstream::submit(const std::vector<H2Field>& head, bool with_body,
                                           std::function<void()> notify) {
  auto& nva = nva_;  // nghttp2 copies the list: one vector reused for every request
  nva.clear();
  for (const auto& f : head) {
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.name.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(), f.value.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  return submit_nva(nva, with_body, std::move(notify));
}

std::shared_ptr<H2Call> H2Upstream::submit(const H2NvList& head, bool with_body, std::function<void()> notify) {
  return submit_nva(head.nva, with_body, std::move(notify));
}

std::shared_ptr<H2Call> H2Upstream::submit_nva(const std::vector<nghttp2_nv>& nva, bool with_body,
                                               std::function<void()> notify) {
  auto call = std::allocate_shared<H2Call>(RecyclingAllocator<H2Call>{});  // one per stream: recycled
  call->headers.reserve(kFieldsReserve);
  call->notify = std::move(notify);
  nghttp2_data_provider provider{};
  provider.source.ptr = call.get();
  provider.read_callback = &H2Upstream::read_body;
  const auto id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), with_body ? &provider : nullptr,
                                         call.get());
  if (id < 0) return nullptr;
  call->id = id;
  calls_[id] = call;
  kick();
  return call;
}

void H2Upstream::resume(H2Call& call) {
  if (closed_ || call.closed) return;
  if (call.deferred) {
    call.deferred = false;
    nghttp2_session_resume_data(session_, call.id);
  }
  kick();
}

void H2Upstream::consume(H2Call& call, std::size_t n) {
  if (closed_ || n == 0) return;
  nghttp2_session_consume(session_, call.id, n);
  kick();
}

void H2Upstream::cancel(H2Call& call, std::uint32_t code) {
  call.notify = nullptr;
  if (closed_ || call.closed) return;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, call.id, code);
  kick();
}

void H2Upstream::close() { shut(); }

net::awaitable<void> H2Upstream::read_loop() {
  auto self = shared_from_this();
  std::vector<char> buf(kReadChunk);
  // No deadline here: each call has its own (the request coroutine's), and an idle connection is closed by
  // the pool's sweep. Reads go to the socket itself (no timer wait per read); a short one marks the socket
  // drained, which the registration for hang-ups below makes safe when the endpoint's FIN came with it.
  conn_->stream.expires_never();
  prepare_drained_reads(conn_->stream.transport().socket());
  while (!closed_) {
    auto [ec, n] = co_await conn_->stream.async_read_some(net::buffer(buf), use_nothrow);
    if (ec || closed_) break;
    if (n < buf.size()) conn_->stream.mark_drained();
    const auto rv = nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(buf.data()), n);
    if (rv < 0) {
      log::debug("http2 upstream " + conn_->pool_key + ": " + nghttp2_strerror(static_cast<int>(rv)));
      break;
    }
    for (auto& [id, bytes] : unclaimed_) nghttp2_session_consume(session_, id, bytes);
    unclaimed_.clear();
    kick();
    if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) break;
  }
  shut();
}

void H2Upstream::kick() {
  if (writing_ || closed_ || !nghttp2_session_want_write(session_)) return;
  writing_ = true;
  // Posted, not run now: every stream submitted in this turn of the loop (the requests of one downstream
  // read) goes out in one write.
  post_recycled(worker_.ioc(), [self = shared_from_this()] { self->write_some(); });
}

void H2Upstream::write_some() {
  // Bursts the socket takes at once follow each other here; a few in a row, then the next is posted (a
  // long request body must not keep the worker from its other connections).
  for (int burst = 0;; ++burst) {
    if (burst == kSyncBursts) {
      post_recycled(worker_.ioc(), [self = shared_from_this()] { self->write_some(); });
      return;
    }
    out_.clear();
    while (!closed_ && out_.size() < kWriteChunk) {
      const std::uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        log::debug("http2 upstream " + conn_->pool_key + ": " + nghttp2_strerror(static_cast<int>(n)));
        closed_ = true;
        break;
      }
      if (n == 0) {
        if (submit_due_trailers()) continue;
        break;
      }
      out_.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (out_.empty() || closed_) {
      writing_ = false;
      if (closed_) shut();
      return;
    }
    if (!conn_->stream.write_or_start(net::buffer(out_), worker_.settings().timeouts.response,
                                      [self = shared_from_this()](boost::system::error_code ec) {
                                        if (ec) self->closed_ = true;
                                        self->write_some();  // the next burst, or the end of this turn
                                      })) {
      return;
    }
  }
}

bool H2Upstream::submit_due_trailers() {
  if (trailers_due_.empty()) return false;
  auto due = std::move(trailers_due_);
  trailers_due_.clear();
  bool any = false;
  std::vector<nghttp2_nv> nva;
  for (const auto id : due) {
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;
    nva.clear();
    for (const auto& f : it->second->trailers_out) {
      nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.name.data())),
                     reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(), f.value.size(),
                     NGHTTP2_NV_FLAG_NONE});
    }
    any |= nghttp2_submit_trailer(session_, id, nva.data(), nva.size()) == 0;
  }
  return any;
}

void H2Upstream::shut() {
  closed_ = true;
  boost::system::error_code ignored;
  conn_->stream.transport().socket().close(ignored);
  settled_timer_->cancel();
  // Every call still open learns the connection is gone.
  auto calls = std::move(calls_);
  calls_.clear();
  headers_call_ = nullptr;
  for (auto& [id, call] : calls) {
    call->closed = true;
    call->close_error = NGHTTP2_CONNECT_ERROR;
    call->wake();
  }
}

// --- nghttp2 callbacks: they record, and never call into the session.

int H2Upstream::on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* p) {
  auto* self = of(p);
  self->headers_id_ = frame->hd.stream_id;
  self->headers_call_ = nullptr;
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto it = self->calls_.find(frame->hd.stream_id);
  if (it != self->calls_.end()) self->headers_call_ = it->second.get();
  return 0;
}

int H2Upstream::on_header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name, nghttp2_rcbuf* value,
                          std::uint8_t, void* p) {
  auto* self = of(p);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->hd.stream_id != self->headers_id_ || !self->headers_call_) return 0;
  auto& call = *self->headers_call_;
  const std::string_view n = h2_view(name);
  const std::string_view v = h2_view(value);
  call.header_bytes += n.size() + v.size() + 4;
  if (call.header_bytes > self->worker_.settings().limits.max_response_header_bytes) {
    call.too_large = true;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;  // nghttp2 resets the stream (INTERNAL_ERROR)
  }
  if (call.head_done) {
    if (!n.empty() && n[0] != ':') call.trailers.push_back({std::string(n), std::string(v)});
    return 0;
  }
  if (n == ":status") {
    unsigned status = 0;
    std::from_chars(v.data(), v.data() + v.size(), status);
    call.status = status;
    call.headers.clear();  // a new head (after an interim 1xx)
  } else if (!n.empty() && n[0] != ':') {
    h2_add_received(call.headers, name, n, v);
  }
  return 0;
}

int H2Upstream::on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* p) {
  auto* self = of(p);
  if (frame->hd.type == NGHTTP2_SETTINGS && !(frame->hd.flags & NGHTTP2_FLAG_ACK) && !self->settled_) {
    self->settled_ = true;
    self->settled_timer_->cancel();  // a timer of ours, not the session: fine from a callback
    return 0;
  }
  if (frame->hd.type == NGHTTP2_GOAWAY) {
    // Streams above last_stream_id are closed by nghttp2 with REFUSED_STREAM (on_stream_close).
    self->goaway_ = true;
    return 0;
  }
  if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) return 0;
  auto it = self->calls_.find(frame->hd.stream_id);
  if (it == self->calls_.end()) return 0;
  auto& call = *it->second;
  if (frame->hd.type == NGHTTP2_HEADERS && !call.head_done) {
    if (call.status >= 200) {
      call.head_done = true;
      call.header_bytes = 0;  // trailers get the limit afresh
    } else {
      call.status = 0;  // interim (1xx): the final head follows
      call.headers.clear();
    }
  }
  if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) call.end_stream = true;
  call.wake();
  return 0;
}

int H2Upstream::on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int, void* p) {
  auto* self = of(p);
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  // The request's HEADERS never left (GOAWAY came first, the stream limit was hit): nothing was processed.
  auto it = self->calls_.find(frame->hd.stream_id);
  if (it == self->calls_.end()) return 0;
  it->second->refused = true;
  return 0;
}

int H2Upstream::on_data_chunk(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                              std::size_t len, void* p) {
  auto* self = of(p);
  auto it = self->calls_.find(id);
  if (it == self->calls_.end() || !it->second->notify) {
    self->unclaimed_.emplace_back(id, len);
    return 0;
  }
  it->second->body_in.append(reinterpret_cast<const char*>(data), len);
  it->second->wake();
  return 0;
}

int H2Upstream::on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error, void* p) {
  auto* self = of(p);
  auto it = self->calls_.find(id);
  if (it == self->calls_.end()) return 0;
  auto call = it->second;
  if (self->headers_call_ == call.get()) self->headers_call_ = nullptr;
  self->calls_.erase(it);
  call->closed = true;
  call->close_error = error;
  if (error == NGHTTP2_REFUSED_STREAM && !call->head_done) call->refused = true;
  if (self->calls_.empty()) self->idle_since_ = std::chrono::steady_clock::now();
  call->wake();
  return 0;
}

ssize_t H2Upstream::read_body(nghttp2_session*, std::int32_t id, std::uint8_t* buf, std::size_t length,
                              std::uint32_t* flags, nghttp2_data_source* source, void* p) {
  auto* call = static_cast<H2Call*>(source->ptr);
  const std::size_t n = std::min(length, call->out_pending());
  if (n == 0 && !call->out_eof) {
    call->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  std::memcpy(buf, call->body_out.data() + call->out_pos, n);
  call->out_pos += n;
  if (call->out_pos == call->body_out.size()) {
    call->body_out.clear();
    call->out_pos = 0;
    if (call->out_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!call->trailers_out.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        of(p)->trailers_due_.push_back(id);
      }
    }
  }
  call->wake();  // room for more
  return static_cast<ssize_t>(n);
}

// --- the pool

bool upstream_is_h2(Worker& worker, const routing::PickResult& picked) {
  const auto protocol = picked.service->clusters[picked.endpoint->cluster].protocol;
  switch (protocol) {
    case config::UpstreamProtocol::http1: return false;
    case config::UpstreamProtocol::h2c:
    case config::UpstreamProtocol::h2: return true;
    case config::UpstreamProtocol::auto_alpn: return !worker.h2_pool().http1_only(endpoint_text(picked));
  }
  return false;
}

net::awaitable<std::shared_ptr<H2Upstream>> H2UpstreamPool::get(Worker& worker, const routing::PickResult& picked,
                                                                std::string& error, bool& http1,
                                                                std::string_view endpoint_known) {
  http1 = false;
  const std::string endpoint = endpoint_known.empty() ? endpoint_text(picked) : std::string(endpoint_known);
  for (;;) {
    if (auto* best = ready(worker, endpoint)) co_return best->shared_from_this();
    std::shared_ptr<H2Upstream> unsettled;
    for (const auto& c : conns_[endpoint]) {
      if (!c->settled()) unsettled = c;
    }
    // A connection whose limit is not known yet, or a connect in flight: wait for it, then look again.
    if (unsettled) {
      co_await unsettled->wait_settled();
      if (!unsettled->settled()) {
        error = "upstream " + endpoint + " sent no HTTP/2 SETTINGS";
        unsettled->close();
        co_return nullptr;
      }
      continue;
    }
    if (auto it = connecting_.find(endpoint); it != connecting_.end()) {
      auto timer = it->second;
      co_await timer->async_wait(use_nothrow);  // cancelled when that connect ends
      continue;
    }
    break;
  }
  const auto protocol = picked.service->clusters[picked.endpoint->cluster].protocol;
  const std::string_view alpn = protocol == config::UpstreamProtocol::h2c        ? std::string_view{}
                                : protocol == config::UpstreamProtocol::auto_alpn ? kAlpnAuto
                                                                                  : kAlpnH2;
  auto in_flight = std::make_shared<net::steady_timer>(worker.ioc(), net::steady_timer::time_point::max());
  connecting_[endpoint] = in_flight;
  auto conn = co_await connect_upstream(worker, picked, error, nullptr, alpn);
  connecting_.erase(endpoint);
  in_flight->cancel();
  if (!conn) co_return nullptr;
  if (conn->stream.is_tls() && conn->alpn != "h2") {
    if (protocol == config::UpstreamProtocol::auto_alpn) {
      // The endpoint speaks HTTP/1.1: this connection serves the request over it, and so will the next ones.
      http1_[endpoint] = true;
      conn->pool_key = endpoint + "|tls";
      worker.pool().give_back(std::move(conn), std::chrono::steady_clock::now());
      http1 = true;
      co_return nullptr;
    }
    worker.stats().upstream_connect_failures.add();
    error = "upstream " + endpoint + " did not choose h2 by ALPN (protocol \"h2\")";
    co_return nullptr;
  }
  auto up = std::make_shared<H2Upstream>(worker, std::move(conn));
  up->start();
  conns_[endpoint].push_back(up);
  co_await up->wait_settled();
  if (!up->settled() || up->closed()) {
    error = "upstream " + endpoint + (up->closed() ? " closed the HTTP/2 connection before its SETTINGS"
                                                   : " sent no HTTP/2 SETTINGS");
    up->close();
    worker.stats().upstream_connect_failures.add();
    co_return nullptr;
  }
  // Ours for this stream even if others waiting took every slot meanwhile: nghttp2 queues a stream
  // beyond the peer's limit until one ends.
  co_return up;
}

H2Upstream* H2UpstreamPool::ready(Worker& worker, std::string_view endpoint) {
  auto it = conns_.find(endpoint);
  if (it == conns_.end()) return nullptr;
  auto& list = it->second;
  std::erase_if(list, [](const auto& c) { return c->closed(); });
  // The busiest connection with room first: streams pack onto few connections, and the others go idle and
  // are swept.
  H2Upstream* best = nullptr;
  for (const auto& c : list) {
    if (c->accepts_streams() && (!best || c->active() > best->active())) best = c.get();
  }
  if (best) worker.stats().upstream_reuses.add();
  return best;
}

void H2UpstreamPool::sweep(std::chrono::steady_clock::time_point now) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    auto& list = it->second;
    for (auto& c : list) {
      if (!c->closed() && c->active() == 0 && now - c->idle_since() > idle_timeout_) c->close();
    }
    std::erase_if(list, [](const auto& c) { return c->closed(); });
    it = list.empty() ? conns_.erase(it) : std::next(it);
  }
}

void H2UpstreamPool::forget_except(const std::unordered_set<std::string>& live) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (!live.count(it->first)) {
      for (auto& c : it->second) {
        if (c->active() == 0) c->close();  // one with streams ends with them: the idle sweep closes it
      }
      std::erase_if(it->second, [](const auto& c) { return c->closed(); });
    }
    it = it->second.empty() ? conns_.erase(it) : std::next(it);
  }
  std::erase_if(http1_, [&](const auto& entry) { return !live.count(entry.first); });
}

void H2UpstreamPool::close_all() {
  for (auto& [key, list] : conns_) {
    for (auto& c : list) c->close();
  }
  conns_.clear();
}

// --- gRPC

bool is_grpc_content_type(std::string_view ct) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size()) return false;
  for (std::size_t i = 0; i < kGrpc.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(ct[i])) != kGrpc[i]) return false;
  }
  return ct.size() == kGrpc.size() || ct[kGrpc.size()] == '+' || ct[kGrpc.size()] == ';';
}

std::optional<std::chrono::steady_clock::duration> parse_grpc_timeout(std::string_view v) {
  using namespace std::chrono;
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size() - 1, n);
  if (ec != std::errc{} || end != v.data() + v.size() - 1) return std::nullopt;
  switch (v.back()) {
    case 'H': return duration_cast<steady_clock::duration>(hours(n));
    case 'M': return duration_cast<steady_clock::duration>(minutes(n));
    case 'S': return duration_cast<steady_clock::duration>(seconds(n));
    case 'm': return duration_cast<steady_clock::duration>(milliseconds(n));
    case 'u': return duration_cast<steady_clock::duration>(microseconds(n));
    case 'n': return duration_cast<steady_clock::duration>(nanoseconds(n));
    default: return std::nullopt;
  }
}

namespace {

template <class Fields>
int grpc_status_in(const Fields& fields) {
  for (const auto& f : fields) {
    if (f.name != "grpc-status") continue;
    int code = -1;
    const auto [end, ec] = std::from_chars(f.value.data(), f.value.data() + f.value.size(), code);
    return ec == std::errc{} && end == f.value.data() + f.value.size() ? code : -1;
  }
  return -1;
}

}  // namespace

int grpc_status_of(const std::vector<H2Field>& fields) { return grpc_status_in(fields); }

int grpc_status_of(const H2FieldList& fields) { return grpc_status_in(fields); }

}  // namespace sluice::proxy
