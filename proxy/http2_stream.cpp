// The request streams of an HTTP/2 session: each one routed, forwarded over HTTP/1.1 and relayed back like
// an HTTP/1.1 request (same Picker rules, retries, limits, errors, access log), in its own coroutine.
#include <cstring>

#include <boost/asio/write.hpp>
#include <boost/beast/http/read.hpp>

#include "proxy/access_log.hpp"
#include "proxy/buffered_parse.hpp"
#include "proxy/forward_headers.hpp"
#include "proxy/h2_upstream.hpp"
#include "proxy/http2_stream.hpp"
#include "log/logger.hpp"
#include "proxy/reported_pick.hpp"
#include "proxy/upstream_connect.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {
namespace {

constexpr std::size_t kRelayPiece = 32 * 1024;  // response bytes read from the endpoint at a time

// Writes `head` (may be empty) and `body` upstream, as one chunk when `chunked` (with the last chunk when
// `last`, carrying `trailers` when there are any). Returns false when the write failed.
net::awaitable<bool> write_piece(UpstreamConnection& up, std::string_view head, const std::string& body, bool chunked,
                                 bool last, std::chrono::steady_clock::duration timeout,
                                 const std::vector<H2Field>& trailers) {
  const bool with_trailers = chunked && last && !trailers.empty();
  const FramedPiece piece(head, body.data(), body.size(), chunked, last && !with_trailers);
  up.stream.expires_after(timeout);
  if (!with_trailers) {
    auto [ec, n] = co_await up.stream.visit([&](auto& s) { return net::async_write(s, piece.buffers(), use_nothrow); });
    co_return !ec;
  }
  const std::string tail = h1_last_chunk(trailers);
  std::array<net::const_buffer, 6> buffers;
  std::copy(piece.buffers().begin(), piece.buffers().end(), buffers.begin());
  buffers[5] = net::buffer(tail);
  auto [ec, n] = co_await up.stream.visit([&](auto& s) { return net::async_write(s, buffers, use_nothrow); });
  co_return !ec;
}

// The gRPC status of one of sluice's own errors (gRPC's HTTP-to-gRPC mapping, with the proxy's causes made
// precise): no route -> UNIMPLEMENTED, no endpoint or a failed endpoint -> UNAVAILABLE, a timeout ->
// DEADLINE_EXCEEDED, a limit -> RESOURCE_EXHAUSTED, a malformed request -> INTERNAL.
int grpc_code_of(unsigned status) {
  switch (status) {
    case 404:
    case 501: return kGrpcUnimplemented;
    case 502:
    case 503: return kGrpcUnavailable;
    case 408:
    case 504: return kGrpcDeadlineExceeded;
    case 413:
    case 429:
    case 431: return kGrpcResourceExhausted;
    default: return kGrpcInternal;
  }
}

// grpc-message is percent-encoded (bytes outside printable ASCII, and '%').
std::string grpc_message(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : text) {
    if (c < 0x20 || c > 0x7e || c == '%') {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

ssize_t Http2Session::H2Stream::read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                                          std::uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<H2Stream*>(source->ptr);
  const std::size_t n = std::min(length, s->body_out.size() - s->out_pos);
  if (n == 0 && !s->out_eof) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  std::memcpy(buf, s->body_out.data() + s->out_pos, n);
  s->out_pos += n;
  if (s->out_pos == s->body_out.size()) {
    s->body_out.clear();
    s->out_pos = 0;
    if (s->out_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!s->trailers_out.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        s->trailers_due = true;
      }
    }
  }
  s->notify();  // room for more
  return static_cast<ssize_t>(n);
}

bool Http2Session::take_wake(H2Stream& s) {
  if (!(s.woken || s.closed || closed_)) return false;
  s.woken = false;
  return true;
}

net::awaitable<bool> Http2Session::wait(H2Stream& s, std::chrono::steady_clock::duration timeout) {
  // Not a coroutine of its own: wait_at's awaitable is handed on.
  const auto now = std::chrono::steady_clock::now();
  return wait_at(s, timeout >= std::chrono::steady_clock::time_point::max() - now
                        ? std::chrono::steady_clock::time_point::max()
                        : now + timeout);
}

net::awaitable<bool> Http2Session::wait_at(H2Stream& s, std::chrono::steady_clock::time_point until) {
  if (take_wake(s)) co_return true;
  // Open and not closed: the stream is in streams_, where the sweep finds it when its limit passes.
  s.wait_until = until;
  if (s.wait_until < sweep_at_) arm_sweep(s.wait_until);
  auto [ec] = co_await net::async_initiate<decltype(use_nothrow), void(boost::system::error_code)>(
      [&s](auto handler) { s.waiter = StreamWaiter(std::move(handler)); }, use_nothrow);
  s.woken = false;
  co_return !ec;
}

void Http2Session::arm_sweep(std::chrono::steady_clock::time_point at) {
  sweep_at_ = at;
  sweep_.expires_at(at);  // a wait already pending for a later time ends with operation_aborted
  sweep_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->sweep();
  });
}

void Http2Session::sweep() {
  sweep_at_ = std::chrono::steady_clock::time_point::max();
  const auto now = std::chrono::steady_clock::now();
  auto next = std::chrono::steady_clock::time_point::max();
  for (auto& [id, s] : streams_) {
    if (!s->waiter) continue;
    if (s->wait_until <= now) {
      s->complete_wait(net::error::timed_out);
    } else {
      next = std::min(next, s->wait_until);
    }
  }
  if (next != std::chrono::steady_clock::time_point::max()) arm_sweep(next);
}

std::chrono::steady_clock::duration Http2Session::idle_limit(const H2Stream& s) const {
  const std::chrono::steady_clock::duration idle = worker_.settings().timeouts.stream_idle;
  if (s.deadline == std::chrono::steady_clock::time_point::max()) return idle;
  return std::max(std::chrono::steady_clock::duration::zero(),
                  std::min(idle, s.deadline - std::chrono::steady_clock::now()));
}

bool Http2Session::past_deadline(const H2Stream& s) const {
  return s.deadline_hit || std::chrono::steady_clock::now() >= s.deadline;
}

void Http2Session::arm_deadline(const std::shared_ptr<H2Stream>& sp) {
  sp->deadline_timer.emplace(worker_.ioc());
  sp->deadline_timer->expires_at(sp->deadline);
  sp->deadline_timer->async_wait([weak = std::weak_ptr<H2Stream>(sp)](const boost::system::error_code& ec) {
    auto s = weak.lock();
    if (ec || !s || s->finished) return;
    s->deadline_hit = true;
    // An HTTP/1.1 endpoint holding the request: its connection is cut (it cannot be told otherwise), which
    // ends the attempt's read or write at once. An HTTP/2 endpoint's attempt sees the deadline itself.
    if (s->upstream) {
      boost::system::error_code ignored;
      s->upstream->stream.transport().socket().close(ignored);
    }
    s->notify();
  });
}

void Http2Session::consume(H2Stream& s, std::size_t n) {
  if (n != 0 && !closed_) nghttp2_session_consume(session_, s.id, n);
}

void Http2Session::finish_stream(H2Stream& s) {
  s.finished = true;
  if (s.deadline_timer) s.deadline_timer->cancel();
  s.upstream = nullptr;
  consume(s, s.body_in.size());
  s.body_in.clear();
}

void Http2Session::submit_response(H2Stream& s, const std::vector<H2Field>& fields, bool with_body) {
  if (s.closed || closed_) return;
  auto& nva = nva_;  // nghttp2 copies the list: one vector reused for every response
  nva.clear();
  for (const auto& f : fields) {
    nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.name.data())),
                   reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(), f.value.size(),
                   NGHTTP2_NV_FLAG_NONE});
  }
  submit_response(s, nva, with_body);
}

void Http2Session::submit_response(H2Stream& s, const std::vector<nghttp2_nv>& nva, bool with_body) {
  if (s.closed || closed_) return;
  nghttp2_data_provider provider{};
  provider.source.ptr = &s;
  provider.read_callback = &H2Stream::read_body;
  nghttp2_submit_response(session_, s.id, nva.data(), nva.size(), with_body ? &provider : nullptr);
  kick();
}

void Http2Session::respond_error(H2Stream& s, unsigned status, std::string_view text, RequestLog& log,
                                 std::string_view retry_after, int grpc_status) {
  log.status = status;
  log.error = std::string(text);
  log.bytes_received = 0;
  worker_.stats().responses_by_class[status / 100].add();
  if (auto* access = worker_.settings().access_log) access->write(log);
  log::debug("h2 " + s.line.method + " " + s.line.path + " -> " + std::to_string(status) + " " + log.error);
  if (s.grpc) {
    // gRPC clients read the status from grpc-status, not :status (gRPC's PROTOCOL-HTTP2.md): a
    // trailers-only answer, as Envoy's local replies to gRPC requests are.
    submit_response(s,
                    {{":status", "200"},
                     {"server", "sluice"},
                     {"content-type", "application/grpc"},
                     {"grpc-status", std::to_string(grpc_status >= 0 ? grpc_status : grpc_code_of(status))},
                     {"grpc-message", grpc_message(text)}},
                    false);
    return;
  }
  s.body_out = std::string(text) + "\n";
  s.out_pos = 0;
  s.out_eof = true;
  std::vector<H2Field> fields{{":status", std::to_string(status)},
                              {"server", "sluice"},
                              {"content-type", "text/plain; charset=utf-8"},
                              {"content-length", std::to_string(s.body_out.size())}};
  if (!retry_after.empty()) fields.push_back({"retry-after", std::string(retry_after)});
  submit_response(s, fields, true);
}

net::awaitable<void> Http2Session::handle_stream(std::shared_ptr<H2Stream> sp) {
  auto self = shared_from_this();
  H2Stream& s = *sp;
  auto& stats = worker_.stats();
  auto& picker = worker_.picker();
  const auto& settings = worker_.settings();
  stats.requests.add();
  stats.h2_streams.add();
  stats.active_requests.inc();
  struct Done {
    Http2Session& h;
    H2Stream& s;
    ~Done() {
      h.worker_.stats().active_requests.dec();
      h.finish_stream(s);
    }
  } done{*this, s};

  RequestLog log;
  // The access log's copies of the request line only when there is an access log (a string each per
  // stream otherwise spent for nothing).
  if (settings.access_log) {
    log.method = s.line.method;
    log.path = s.line.path;
    log.client = client_ip_;
  }
  log.src_cluster = settings.local_cluster;
  // The request's fields as Beast's only when something needs them (an HTTP/1.1 endpoint, a route matching
  // a header): an HTTP/2 endpoint gets its header list straight from the stream's (h2_headers.hpp).
  http::fields fields;
  bool fields_built = false;
  std::string added_length;  // a Content-Length sluice adds (a whole body that came without one)
  const auto beast_fields = [&]() -> http::fields& {
    if (!fields_built) {
      fields_built = true;
      h2_request_fields(s.line, s.fields, fields);
      if (!added_length.empty() && fields.find(http::field::content_length) == fields.end()) {
        fields.set(http::field::content_length, added_length);
      }
    }
    return fields;
  };
  const std::string_view authority = h2_authority(s.line, s.fields);
  if (settings.access_log) log.authority = authority;
  if (auto ct = h2_find(s.fields, "content-type"); ct && is_grpc_content_type(ct->value)) {
    s.grpc = true;
    // grpc-timeout is the call's deadline, bounded by the response timeout.
    if (auto t = h2_find(s.fields, "grpc-timeout")) {
      if (auto d = parse_grpc_timeout(t->value)) {
        const auto bound = std::chrono::duration_cast<std::chrono::steady_clock::duration>(settings.timeouts.response);
        s.deadline = std::chrono::steady_clock::now() + std::min(*d, bound);
        arm_deadline(sp);
      }
    }
  }
  // limits.max_requests_per_worker, as for HTTP/1.1 (http_session.cpp): this stream is counted already.
  if (stats.active_requests.get() > static_cast<std::int64_t>(settings.limits.max_requests_per_worker)) {
    stats.requests_overloaded.add();
    respond_error(s, 503, "overloaded: too many requests in flight (limits.max_requests_per_worker)", log,
                  kOverloadRetryAfter, kGrpcResourceExhausted);
    co_return;
  }
  if (s.too_large) {
    stats.bad_requests.add();
    respond_error(s, 431, "request head too large", log);
    co_return;
  }
  if (s.line.method == "CONNECT") {
    stats.bad_requests.add();
    respond_error(s, 501, "CONNECT is not supported", log);
    co_return;
  }
  if (s.line.path.empty() || (s.line.path[0] != '/' && !(s.line.method == "OPTIONS" && s.line.path == "*"))) {
    stats.bad_requests.add();
    respond_error(s, 400, "request target must be origin-form", log);
    co_return;
  }
  if (authority.empty()) {
    stats.bad_requests.add();
    respond_error(s, 400, "missing :authority and Host", log);
    co_return;
  }
  const auto view = [&] {
    routing::RequestView v;
    v.listener = listener_->cfg.name;
    v.host = authority;
    v.target = s.line.path;
    v.method = s.line.method;
    v.client_address = client_ip_;
    v.header = [&beast_fields](std::string_view name) -> std::string_view {
      const auto& f = beast_fields();
      auto it = f.find(name);
      return it == f.end() ? std::string_view{} : std::string_view(it->value());
    };
    return v;
  };

  routing::AttemptState attempt;
  auto first_pick = picker.pick(view(), attempt);
  log.service = first_pick.service_id;
  if (first_pick.status == routing::PickStatus::no_route) {
    stats.no_route.add();
    respond_error(s, 404, "no route: " + first_pick.reason, log);
    co_return;
  }
  if (first_pick.status != routing::PickStatus::ok) {
    stats.no_endpoint.add();
    respond_error(s, 503, "no endpoint: " + first_pick.reason, log);
    co_return;
  }
  ReportedPick picked(picker, first_pick);

  // The first piece of the body (what has arrived, once something has), as on HTTP/1.1: a body that came
  // whole with it is replayable and goes with its length. A gRPC call to an HTTP/2 endpoint does not wait:
  // both directions stream there, and a bidirectional call's client may send nothing until it hears.
  const bool wait_for_body = !(s.grpc && upstream_is_h2(worker_, *picked));
  while (wait_for_body && !s.end_stream && s.body_in.empty() && !s.closed && !closed_ && !s.deadline_hit) {
    if (take_wake(s)) continue;
    if (!co_await wait(s, idle_limit(s))) break;
  }
  if (s.closed || closed_) co_return;  // reset by the client: the pick is reported as a local abort
  if (wait_for_body && !s.end_stream && s.body_in.empty()) {
    if (past_deadline(s)) {
      stats.upstream_timeouts.add();
      respond_error(s, 504, "grpc-timeout passed before the request body came", log);
    } else {
      stats.bad_requests.add();
      respond_error(s, 408, "request body timeout (timeouts.stream_idle)", log);
    }
    co_return;
  }
  std::string first = std::move(s.body_in);
  s.body_in.clear();
  consume(s, first.size());
  kick();
  const bool body_in_hand = s.end_stream;
  std::uint64_t body_bytes = first.size();
  bool chunked = false;
  if (!h2_find(s.fields, "content-length")) {
    // Chunked also carries the request's trailers to an HTTP/1.1 endpoint (a gRPC-style request body).
    if (!body_in_hand || !s.trailers_in.empty()) {
      chunked = true;
    } else if (!first.empty()) {
      added_length = std::to_string(first.size());
      if (fields_built) fields.set(http::field::content_length, added_length);
    }
  }
  const bool head_request = s.line.method == "HEAD";
  std::string head;

  for (;;) {
    log.attempts = attempt.attempt;
    set_endpoint_text(*picked, log.upstream);
    log.dst_cluster = picked->cluster;
    log.tier = picked->tier;
    routing::Outcome outcome = routing::Outcome::success;
    unsigned status = 0;
    std::string failure;
    bool body_streamed = false;
    if (upstream_is_h2(worker_, *picked)) {
      H2Attempt a;
      // A response routing prefers to retry (a 502-504, gRPC UNAVAILABLE) before anything went to the client.
      const auto retry_instead = [&](routing::Outcome o, unsigned) {
        picked.report(o);
        const bool replayable = body_in_hand && !a.body_streamed;
        // gRPC lets any call that the endpoint answered UNAVAILABLE without processing be retried, whatever
        // its method (all are POST): it counts as idempotent here.
        // (Both arms string_views: with a string literal against the std::string, the conditional would make
        // a temporary std::string and the view would dangle, as AddressSanitizer found.)
        const std::string_view method = s.grpc && o == routing::Outcome::gateway_error
                                            ? std::string_view("PUT")
                                            : std::string_view(s.line.method);
        if (!picker.may_retry(*picked, o, method, replayable, attempt)) return false;
        auto next = picker.pick(view(), attempt);
        if (next.status != routing::PickStatus::ok) return false;
        stats.retries.add();
        log::debug("h2: retrying " + s.line.method + " " + s.line.path + " on " + endpoint_text(next) + " after " +
                   routing::to_string(o));
        picked.replace(std::move(next));
        return true;
      };
      co_await attempt_h2(s, *picked, added_length, first, body_in_hand, log, RetryInstead::of(retry_instead), a);
      if (a.result == H2Attempt::Result::retry) continue;
      if (a.result == H2Attempt::Result::relayed) {
        picked.report(a.outcome);
        if (auto* access = settings.access_log) access->write(log);
        co_return;
      }
      if (a.result == H2Attempt::Result::failed) {
        if (a.outcome == routing::Outcome::local_abort || s.closed || closed_) co_return;
        picked.report(a.outcome);
        const bool replayable = body_in_hand && !a.body_streamed;
        if (!past_deadline(s) && picker.may_retry(*picked, a.outcome, s.line.method, replayable, attempt)) {
          auto next = picker.pick(view(), attempt);
          if (next.status == routing::PickStatus::ok) {
            stats.retries.add();
            log::debug("h2: retrying " + s.line.method + " " + s.line.path + " on " + endpoint_text(next) + " after " +
                       routing::to_string(a.outcome) + ": " + a.failure);
            picked.replace(std::move(next));
            continue;
          }
        }
        if (a.outcome == routing::Outcome::timeout) {
          stats.upstream_timeouts.add();
          respond_error(s, 504, a.failure, log);
        } else {
          if (a.outcome != routing::Outcome::connect_failure) stats.upstream_resets.add();
          respond_error(s, 502, a.failure, log);
        }
        co_return;
      }
      // use_http1: ALPN chose HTTP/1.1; the connection waits in the pool for the code below.
    }
    std::optional<upstream_response_parser> response;
    bool no_descriptors = false;
    auto up = co_await connect_upstream(worker_, *picked, failure, &no_descriptors);
    if (s.closed || closed_) co_return;
    if (up && past_deadline(s)) {
      // The grpc-timeout passed during the connect: the request does not go out at all.
      worker_.pool().give_back(std::move(up), std::chrono::steady_clock::now());
      stats.upstream_timeouts.add();
      respond_error(s, 504, "grpc-timeout passed before the request went to " + log.upstream, log);
      co_return;
    }
    if (!up) {
      // Out of descriptors here: not the endpoint's failure (as in http_session_forward.cpp).
      outcome = no_descriptors ? routing::Outcome::local_abort : routing::Outcome::connect_failure;
    } else {
      s.upstream = up.get();
      const bool reused = up->requests > 0;
      up->stream.mark_drained();
      write_request_head(beast_fields(),
                         RequestHeadParts{s.line.method, picked->upstream_target, picked->host_header, client_ip_,
                                          stream_.is_tls(), chunked, {}},
                         head);
      // Named, not a temporary in the co_await expression: GCC 12 destroys such conditional temporaries
      // twice across the suspension (a crash seen here).
      std::vector<H2Field> trailers;
      if (body_in_hand) trailers = trailer_fields(s.trailers_in);
      bool ok = co_await write_piece(*up, head, first, chunked, body_in_hand, settings.timeouts.response, trailers);
      bool last_sent = body_in_hand;
      while (ok && !last_sent && !s.deadline_hit) {
        if (s.body_in.empty() && !s.end_stream) {
          if (s.closed || closed_) break;
          if (take_wake(s)) continue;
          if (!co_await wait(s, idle_limit(s))) break;
          continue;
        }
        std::string piece = std::move(s.body_in);
        s.body_in.clear();
        body_streamed = true;
        last_sent = s.end_stream;
        if (last_sent) trailers = trailer_fields(s.trailers_in);
        ok = co_await write_piece(*up, {}, piece, chunked, last_sent, settings.timeouts.response, trailers);
        body_bytes += piece.size();
        consume(s, piece.size());
        kick();
      }
      if (ok && !last_sent && !s.deadline_hit) {
        // The client reset the stream or went quiet mid-body (timeouts.stream_idle): the half request dies
        // with its connection.
        s.upstream = nullptr;
        picked.report(routing::Outcome::local_abort);
        if (!s.closed && !closed_) {
          nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_CANCEL);
          kick();
        }
        co_return;
      }
      if (!ok) {
        outcome = reused ? routing::Outcome::reset_reused : routing::Outcome::reset;
        failure = "upstream " + up->pool_key + " failed while sending the request";
      } else {
        auto r = co_await read_upstream_response_head(worker_, *up, response, head_request, *picked, reused);
        outcome = r.outcome;
        status = r.status;
        if (!r.failure.empty()) failure = std::move(r.failure);
      }
    }
    if (s.closed || closed_) co_return;
    log.bytes_received = body_bytes;
    if (s.deadline_hit && !response) {
      // grpc-timeout: the deadline cut the endpoint's connection before its answer; not retried (the
      // caller's time is up), DEADLINE_EXCEEDED.
      s.upstream = nullptr;
      picked.report(routing::Outcome::local_abort);  // the caller's budget, not the endpoint's fault
      stats.upstream_timeouts.add();
      respond_error(s, 504, "grpc-timeout passed waiting for " + log.upstream, log);
      co_return;
    }
    if (status == 101) {
      picked.report(routing::Outcome::reset);
      respond_error(s, 502, "upstream " + log.upstream + " switched protocols without an upgrade request", log);
      co_return;
    }
    if (outcome != routing::Outcome::success) {
      picked.report(outcome);
      const bool replayable = body_in_hand && !body_streamed;
      if (picker.may_retry(*picked, outcome, s.line.method, replayable, attempt)) {
        auto next = picker.pick(view(), attempt);
        if (next.status == routing::PickStatus::ok) {
          stats.retries.add();
          log::debug("h2: retrying " + s.line.method + " " + s.line.path + " on " + endpoint_text(next) + " after " +
                     routing::to_string(outcome) + ": " +
                     (failure.empty() ? "status " + std::to_string(status) : failure));
          s.upstream = nullptr;
          picked.replace(std::move(next));
          continue;
        }
      }
      if (!response) {
        if (outcome == routing::Outcome::local_abort) {
          stats.requests_overloaded.add();
          respond_error(s, 503, failure, log, kOverloadRetryAfter, kGrpcResourceExhausted);
        } else if (outcome == routing::Outcome::timeout) {
          stats.upstream_timeouts.add();
          respond_error(s, 504, failure, log);
        } else {
          if (outcome != routing::Outcome::connect_failure) stats.upstream_resets.add();
          respond_error(s, 502, failure, log);
        }
        co_return;
      }
    }

    // Relay: HEADERS now, then DATA as the endpoint's body arrives, at most kOutHigh buffered.
    auto& rp = *response;
    const bool no_body = head_request || status == 204 || status == 304 || rp.is_done();
    submit_response(s, h2_response_fields(rp.get(), status, picked->set_cookie), !no_body);
    stats.responses_by_class[status / 100 < 6 ? status / 100 : 5].add();
    log.status = status;
    bool upstream_ok = true;
    bool client_stalled = false;
    if (no_body) {
      s.out_eof = true;
    } else {
      std::vector<char> buf(kRelayPiece);
      auto& body = rp.get().body();
      for (;;) {
        while (s.body_out.size() - s.out_pos >= kOutHigh && !s.closed && !closed_ && !s.deadline_hit) {
          if (take_wake(s)) continue;
          if (!co_await wait(s, settings.timeouts.stream_idle)) break;
        }
        if (s.deadline_hit) {
          upstream_ok = false;
          break;
        }
        if (s.closed || closed_) break;  // the client reset the stream or left
        if (s.body_out.size() - s.out_pos >= kOutHigh) {
          client_stalled = true;  // read nothing for timeouts.stream_idle
          break;
        }
        body.data = buf.data();
        body.size = buf.size();
        boost::system::error_code ec;
        if (!parse_buffered(rp, up->buffer, ec)) {
          up->stream.expires_after(settings.timeouts.response);
          std::tie(ec, std::ignore) =
              co_await up->stream.visit([&](auto& st) { return http::async_read_some(st, up->buffer, rp, use_nothrow); });
          if (ec == http::error::need_buffer) ec = {};
        }
        if (ec) {
          log::debug("h2: upstream " + up->pool_key + " failed mid-response: " + ec.message());
          upstream_ok = false;
          break;
        }
        const std::size_t got = buf.size() - body.size;
        s.body_out.append(buf.data(), got);
        log.bytes_sent += got;
        stats.bytes_sent.add(got);
        if (rp.is_done()) s.out_eof = true;
        if (s.deferred && !s.closed && !closed_) {
          s.deferred = false;
          nghttp2_session_resume_data(session_, s.id);
        }
        kick();
        if (rp.is_done()) break;
      }
    }
    s.upstream = nullptr;
    if (!upstream_ok) {
      // The grpc-timeout cutting the relay is the caller's budget, not the endpoint's failure.
      picked.report(s.deadline_hit ? routing::Outcome::local_abort : routing::Outcome::reset);
      // The response is cut: the client must see it cut too (CANCEL when the grpc-timeout cut it).
      if (!s.closed && !closed_) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id,
                                  s.deadline_hit ? NGHTTP2_CANCEL : NGHTTP2_INTERNAL_ERROR);
        kick();
      }
    } else {
      picked.report(outcome);
      if (client_stalled && !s.closed && !closed_) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_CANCEL);
        kick();
      }
      if (rp.is_done() && rp.get().keep_alive()) {
        ++up->requests;
        worker_.pool().give_back(std::move(up), std::chrono::steady_clock::now());
      }
    }
    if (auto* access = settings.access_log) access->write(log);
    co_return;
  }
}

}  // namespace sluice::proxy
