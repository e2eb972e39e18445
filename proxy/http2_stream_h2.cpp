// A downstream HTTP/2 stream forwarded to an endpoint over HTTP/2 (proxy/h2_upstream.hpp): both directions
// at once (a gRPC bidirectional call sends and receives together), the response head, body and trailers
// passed through as they come, each side's window consumed only once the bytes moved on.
#include <boost/beast/http/fields.hpp>

#include "log/logger.hpp"
#include "proxy/access_log.hpp"
#include "proxy/h2_upstream.hpp"
#include "proxy/http2_stream.hpp"
#include "proxy/upstream_connect.hpp"
#include "proxy/worker.hpp"

namespace sluice::proxy {


net::awaitable<void> Http2Session::attempt_h2(H2Stream& s, const routing::PickResult& picked,
                                              std::string_view added_length, const std::string& first,
                                              bool body_in_hand, RequestLog& log,
                                              RetryInstead retry_instead,
                                              H2Attempt& a) {
  using Result = H2Attempt::Result;
  using clock = std::chrono::steady_clock;
  const auto& settings = worker_.settings();
  auto& stats = worker_.stats();
  bool http1 = false;
  // An open connection with room (the common case) without get()'s coroutine frame.
  std::shared_ptr<H2Upstream> up;
  if (auto* ready = worker_.h2_pool().ready(worker_, log.upstream)) {
    up = ready->shared_from_this();
  } else {
    up = co_await worker_.h2_pool().get(worker_, picked, a.failure, http1, log.upstream);
  }
  if (http1) {
    a.result = Result::use_http1;
    co_return;
  }
  if (s.closed || closed_) {
    a.outcome = routing::Outcome::local_abort;
    co_return;
  }
  if (!up) {
    a.outcome = routing::Outcome::connect_failure;
    co_return;
  }
  const bool with_body = !(body_in_hand && first.empty() && s.trailers_in.empty());
  // The header list straight from the stream's fields (nghttp2 copies it in submit).
  const std::string_view scheme = up->key().find("|tls") != std::string::npos ? "https" : "http";
  h2_upstream_request_nva(s.fields, added_length, s.line.method, scheme, picked.host_header, picked.upstream_target,
                          client_ip_, stream_.is_tls(), nv_);
  auto call = up->submit(nv_, with_body, [&s] { s.notify(); });
  if (!call) {
    a.outcome = routing::Outcome::connect_failure;
    a.failure = "upstream " + up->key() + " takes no new stream";
    co_return;
  }
  // However this ends, the call must not wake this stream afterwards, and an unfinished call is reset.
  struct Release {
    H2Upstream& up;
    H2Call& call;
    ~Release() {
      if (!call.closed) up.cancel(call, NGHTTP2_CANCEL);
      call.notify = nullptr;
    }
  } release{*up, *call};
  if (with_body) {
    call->body_out = first;  // a copy: `first` stays for a retry
    if (body_in_hand) call->trailers_out = trailer_fields(s.trailers_in);
    call->out_eof = body_in_hand;
    up->resume(*call);
  }

  bool head_sent = false;
  const auto started = clock::now();
  for (;;) {
    // The client reset the stream or left: the endpoint's stream is reset with it (Release).
    if (s.closed || closed_) {
      a.outcome = routing::Outcome::local_abort;
      a.result = head_sent ? Result::relayed : Result::failed;
      co_return;
    }
    // Request body: what the client sent, on to the endpoint while its buffer has room.
    if (!call->out_eof && !call->closed) {
      if (!s.body_in.empty() && call->out_pending() < H2Call::kOutHigh) {
        const std::size_t n = s.body_in.size();
        call->body_out.append(s.body_in);
        s.body_in.clear();
        a.body_streamed = true;
        log.bytes_received += n;
        consume(s, n);
        kick();
      }
      if (s.body_in.empty() && s.end_stream) {
        call->trailers_out = trailer_fields(s.trailers_in);
        call->out_eof = true;
      }
      up->resume(*call);
    }
    // The response head.
    if (!head_sent && call->head_done) {
      const int grpc_status = call->end_stream ? grpc_status_of(call->headers) : -1;
      const bool replayable = body_in_hand && !a.body_streamed;
      a.status = call->status;
      a.outcome = routing::outcome_of_status(call->status);
      // gRPC: UNAVAILABLE in a trailers-only answer is the endpoint saying "not now"; with the request body
      // still held the call can go elsewhere.
      if (s.grpc && grpc_status == kGrpcUnavailable && a.outcome == routing::Outcome::success) {
        a.outcome = routing::Outcome::gateway_error;
      }
      if (a.outcome != routing::Outcome::success && retry_instead(a.outcome, a.status)) {
        a.result = Result::retry;
        co_return;
      }
      (void)replayable;
      if (grpc_status > 0) {
        log::debug("h2: " + s.line.path + " answered grpc-status " + std::to_string(grpc_status) + " by " + up->key());
      }
      worker_.picker().responding(picked);
      const bool bodiless = call->end_stream && call->body_in.empty();
      // The endpoint's end-to-end fields, stickiness cookie, Via: nghttp2's list straight from the call's.
      h2_response_nva(call->headers, call->status, picked.set_cookie, nv_);
      submit_response(s, nv_.nva, !bodiless);
      stats.responses_by_class[a.status / 100 < 6 ? a.status / 100 : 5].add();
      log.status = a.status;
      head_sent = true;
      a.result = Result::relayed;
      if (bodiless) {
        s.out_eof = true;
        co_return;
      }
    }
    if (head_sent) {
      // Response body, while the client's buffer has room; the endpoint's window opens as it moves on.
      if (!call->body_in.empty() && s.body_out.size() - s.out_pos < kOutHigh) {
        const std::size_t n = call->body_in.size();
        s.body_out.append(call->body_in);
        call->body_in.clear();
        log.bytes_sent += n;
        stats.bytes_sent.add(n);
        up->consume(*call, n);
      }
      if (call->end_stream && call->body_in.empty() && !s.out_eof) {
        s.out_eof = true;
        s.trailers_out = trailer_fields(call->trailers);
      }
      if (s.deferred) {
        s.deferred = false;
        nghttp2_session_resume_data(session_, s.id);
      }
      kick();
      if (s.out_eof && s.trailers_out.empty()) co_return;  // the provider ends the stream with the last DATA
      if (s.trailers_due) {
        std::vector<nghttp2_nv> nva;
        for (const auto& f : s.trailers_out) {
          nva.push_back({reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.name.data())),
                         reinterpret_cast<std::uint8_t*>(const_cast<char*>(f.value.data())), f.name.size(),
                         f.value.size(), NGHTTP2_NV_FLAG_NONE});
        }
        nghttp2_submit_trailer(session_, s.id, nva.data(), nva.size());
        kick();
        co_return;
      }
    }
    // The endpoint's stream ended without (all of) the response.
    if (call->closed && !(call->end_stream && call->close_error == NGHTTP2_NO_ERROR)) {
      if (!head_sent) {
        a.outcome = call->refused ? routing::Outcome::connect_failure
                    : call->too_large ? routing::Outcome::reset
                                      : routing::Outcome::reset;
        a.failure = "upstream " + up->key() +
                    (call->refused ? " refused the stream (not processed)"
                     : call->too_large ? " sent a response head over the limit"
                                       : " reset the stream before responding (" +
                                             std::string(nghttp2_http2_strerror(call->close_error)) + ")");
        co_return;
      }
      a.outcome = routing::Outcome::reset;
      log::debug("h2: upstream " + up->key() + " reset stream " + std::to_string(call->id) + " mid-response (" +
                 nghttp2_http2_strerror(call->close_error) + ")");
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id,
                                call->close_error == NGHTTP2_NO_ERROR ? std::uint32_t{NGHTTP2_INTERNAL_ERROR} : call->close_error);
      kick();
      co_return;
    }
    // Wait for either side. Before the head: the response timeout (or the gRPC deadline); after: idle. A
    // wake-up already there goes round again first (no clock read: the next turn's wait checks the limit).
    if (take_wake(s)) continue;
    const auto now = clock::now();
    auto limit = head_sent ? settings.timeouts.stream_idle : std::chrono::duration_cast<clock::duration>(settings.timeouts.response) - (now - started);
    if (s.deadline != clock::time_point::max()) limit = std::min(limit, s.deadline - now);
    const auto until = limit >= clock::time_point::max() - now ? clock::time_point::max() : now + limit;
    if (limit <= clock::duration::zero() || !co_await wait_at(s, until)) {
      a.outcome = routing::Outcome::timeout;
      a.failure = "upstream response timeout from " + endpoint_text(picked);
      if (head_sent) {
        nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, s.id, NGHTTP2_CANCEL);
        kick();
      }
      co_return;
    }
  }
}

}  // namespace sluice::proxy
