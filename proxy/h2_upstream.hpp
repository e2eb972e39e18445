// The HTTP/2 client side: requests to endpoints of clusters whose `protocol` is h2c, h2 or auto (when ALPN
// chose h2), multiplexed as streams on a few connections per worker per endpoint.
//
// libnghttp2's client session frames and decodes; H2Upstream drives it on the worker's io_context exactly
// as Http2Session does downstream: a read loop feeds nghttp2_session_mem_recv, one writer drains
// nghttp2_session_mem_send, and the callbacks only record into the stream's H2Call and wake whoever waits
// on it. The proxy's request coroutine owns the exchange: it appends request body to the call (sent by a
// deferred data provider), takes the response as it arrives and consumes it once written downstream, so a
// call holds at most its window of response body (automatic WINDOW_UPDATE is off).
//
// A connection takes streams up to the peer's SETTINGS_MAX_CONCURRENT_STREAMS, once its SETTINGS came (until
// then requests wait for them, as they wait for a connect in flight to the same endpoint, rather than guess
// the limit or open a connection each); the pool opens another one when every connection is full. A connection that got GOAWAY takes no new stream; its
// streams above the last stream id, like streams the peer refused (REFUSED_STREAM), end `refused`: the
// endpoint did not process them, so they are retried anywhere. Load balancing stays per request: routing
// picks the endpoint of every stream, the pool only chooses the connection.
//
// Worker thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <nghttp2/nghttp2.h>

#include "proxy/h2_headers.hpp"
#include "proxy/pooled_frame.hpp"
#include "proxy/upstream_pool.hpp"
#include "routing/picker.hpp"

namespace sluice::proxy {

class Worker;

// One request stream to an endpoint: what its coroutine hands to nghttp2 and what nghttp2 recorded back.
struct H2Call {
  static constexpr std::size_t kOutHigh = 64 * 1024;  // request body buffered before the sender waits

  // Request body waiting for the data provider.
  std::string body_out;
  std::size_t out_pos = 0;
  bool out_eof = false;
  bool deferred = false;
  // Request trailers: set before out_eof; the provider then ends the DATA without END_STREAM and the
  // connection's writer sends them as a trailing HEADERS (nothing calls into nghttp2 from its callbacks).
  std::vector<H2Field> trailers_out;

  // The response.
  unsigned status = 0;            // the final status, once head_done
  H2FieldList headers;            // the final response head's regular fields (lowercase)
  bool head_done = false;
  std::vector<H2Field> trailers;  // a trailing HEADERS block (gRPC's grpc-status lives here)
  std::string body_in;            // received, not yet taken by the relay
  std::size_t header_bytes = 0;
  bool too_large = false;         // beyond limits.max_response_header_bytes: the stream is reset
  bool end_stream = false;        // the endpoint sent all of it
  bool closed = false;            // nghttp2 closed the stream (complete or reset), or the connection died
  std::uint32_t close_error = 0;
  bool refused = false;           // closed unprocessed (REFUSED_STREAM, above GOAWAY's last id, not sent)

  std::int32_t id = 0;
  // Called when something arrived for the call: the request coroutine's wake-up (it may be waiting on its
  // downstream side at the same time, hence a callback and not a timer of its own).
  std::function<void()> notify;

  void wake() {
    if (notify) notify();
  }
  std::size_t out_pending() const { return body_out.size() - out_pos; }
};

class H2Upstream : public std::enable_shared_from_this<H2Upstream> {
 public:
  // Our side's settings: the peer may send this much per stream / per connection before we consume.
  static constexpr std::int32_t kStreamWindow = 256 * 1024;
  static constexpr std::int32_t kConnectionWindow = 4 * 1024 * 1024;
  static constexpr std::size_t kFieldsReserve = 16;  // response fields room is made for at once

  H2Upstream(Worker& worker, std::unique_ptr<UpstreamConnection> conn);
  ~H2Upstream();
  H2Upstream(const H2Upstream&) = delete;
  H2Upstream& operator=(const H2Upstream&) = delete;

  // Sends the connection preface and SETTINGS and starts reading.
  void start();

  // Whether a new stream may go on this connection now.
  bool accepts_streams() const;
  // The peer's first SETTINGS arrived (its stream limit is known), or the connection closed.
  bool settled() const { return settled_ || closed_; }
  // Waits until settled(), at most timeouts.connect after start().
  net::awaitable<void> wait_settled();
  bool closed() const { return closed_; }
  std::size_t active() const { return calls_.size(); }
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }
  const std::string& key() const { return conn_->pool_key; }

  // Opens a stream with this head; `with_body`: the request body follows through call->body_out. Null
  // when nghttp2 refused to open it (the connection is going away).
  std::shared_ptr<H2Call> submit(const std::vector<H2Field>& head, bool with_body, std::function<void()> notify);
  // The same with the header list built for nghttp2 already (h2_upstream_request_nva).
  std::shared_ptr<H2Call> submit(const H2NvList& head, bool with_body, std::function<void()> notify);
  // More request body is in call.body_out (or out_eof was set): let the data provider run again.
  void resume(H2Call& call);
  // `n` bytes of response body were written on downstream: the endpoint may send that much more.
  void consume(H2Call& call, std::size_t n);
  // Resets the stream (the client left, a limit hit) and forgets it.
  void cancel(H2Call& call, std::uint32_t code);
  // Closes the connection; every open call ends `closed`.
  void close();

 private:
  std::shared_ptr<H2Call> submit_nva(const std::vector<nghttp2_nv>& nva, bool with_body,
                                     std::function<void()> notify);

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, nghttp2_rcbuf* name, nghttp2_rcbuf* value,
                       std::uint8_t flags, void* self);
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* self);
  static int on_frame_not_send(nghttp2_session*, const nghttp2_frame* frame, int error, void* self);
  static int on_data_chunk(nghttp2_session*, std::uint8_t flags, std::int32_t id, const std::uint8_t* data,
                           std::size_t len, void* self);
  static int on_stream_close(nghttp2_session*, std::int32_t id, std::uint32_t error, void* self);
  static ssize_t read_body(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                           std::uint32_t* flags, nghttp2_data_source* source, void*);

  net::awaitable<void> read_loop();
  // One turn of the writer (a plain handler chain, as Http2Session's): what nghttp2 has, in one write.
  void write_some();
  void kick();
  void shut();
  bool submit_due_trailers();  // true when it submitted any

  Worker& worker_;
  std::unique_ptr<UpstreamConnection> conn_;
  nghttp2_session* session_ = nullptr;
  std::unordered_map<std::int32_t, std::shared_ptr<H2Call>> calls_;
  std::vector<std::int32_t> trailers_due_;  // calls whose body ended and whose trailers are to be submitted
  std::vector<std::pair<std::int32_t, std::size_t>> unclaimed_;  // body bytes of streams nobody reads
  std::vector<nghttp2_nv> nva_;  // submit's header list, reused (nghttp2 copies it)
  // The call the header block being received belongs to (on_begin_headers): on_header, called per field,
  // needs no lookup in calls_. Null when none (cleared when that call leaves calls_).
  std::int32_t headers_id_ = 0;
  H2Call* headers_call_ = nullptr;
  std::string out_;
  bool writing_ = false;
  bool closed_ = false;
  bool goaway_ = false;
  bool settled_ = false;
  // Cancelled when settled: wakes every wait_settled (a shared_ptr, as waiters may outlive a close).
  std::shared_ptr<net::steady_timer> settled_timer_;
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
};

// The worker's HTTP/2 connections, by endpoint.
class H2UpstreamPool {
 public:
  explicit H2UpstreamPool(std::chrono::milliseconds idle_timeout) : idle_timeout_(idle_timeout) {}

  // A connection to the picked endpoint with room for one more stream: an open one, else a new one
  // (h2c, or TLS offering h2 alone, or h2 and http/1.1 for `auto`). Null on failure, with `error`. For
  // `auto`, when ALPN chose http/1.1, `http1` is set, the connection goes to the worker's HTTP/1.1 pool
  // and the endpoint is remembered as HTTP/1.1 (http1_only) until it leaves the worker.
  // `endpoint`: endpoint_text(picked) when the caller has it already.
  net::awaitable<std::shared_ptr<H2Upstream>> get(Worker& worker, const routing::PickResult& picked,
                                                  std::string& error, bool& http1, std::string_view endpoint = {});
  // get()'s common case without its coroutine: an open connection to `endpoint` with room for one more
  // stream, or null (then get() waits for a settling or connecting one, or connects).
  H2Upstream* ready(Worker& worker, std::string_view endpoint);
  // `auto` endpoints known to have chosen HTTP/1.1.
  bool http1_only(const std::string& endpoint) const { return http1_.count(endpoint) != 0; }

  // Closes connections without streams for longer than the idle timeout, forgets closed ones.
  void sweep(std::chrono::steady_clock::time_point now);
  void close_all();
  // Closes the connections without streams to endpoints not in `live` ("address:port"), and forgets what
  // ALPN said about them (they left the routing table; a returning endpoint is asked again).
  void forget_except(const std::unordered_set<std::string>& live);
  bool empty() const { return conns_.empty() && http1_.empty(); }

 private:
  std::chrono::milliseconds idle_timeout_;
  // By "address:port"; looked up by string_view (a stream's endpoint text needs no std::string).
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::unordered_map<std::string, std::vector<std::shared_ptr<H2Upstream>>, Hash, std::equal_to<>> conns_;
  std::unordered_map<std::string, bool> http1_;
  // Endpoints with a connect in flight: requests for them wait for it rather than open one each.
  std::unordered_map<std::string, std::shared_ptr<net::steady_timer>> connecting_;
};

// Whether requests to the picked endpoint go over HTTP/2 (its cluster's protocol, and for `auto` what the
// endpoint's ALPN said last time).
bool upstream_is_h2(Worker& worker, const routing::PickResult& picked);

// gRPC helpers (RFC-less, per grpc's PROTOCOL-HTTP2.md).
// The status codes sluice answers with itself (grpc's doc/statuscodes.md).
constexpr int kGrpcDeadlineExceeded = 4;
constexpr int kGrpcResourceExhausted = 8;
constexpr int kGrpcUnimplemented = 12;
constexpr int kGrpcInternal = 13;
constexpr int kGrpcUnavailable = 14;
// Whether a request is a gRPC call: content-type application/grpc, application/grpc+proto, ...
bool is_grpc_content_type(std::string_view content_type);
// The grpc-timeout value ("<1-8 digits><H|M|S|m|u|n>") as a duration; nullopt when malformed or absent.
std::optional<std::chrono::steady_clock::duration> parse_grpc_timeout(std::string_view value);
// The grpc-status value of a response head or trailers, or -1.
int grpc_status_of(const std::vector<H2Field>& fields);
int grpc_status_of(const H2FieldList& fields);

}  // namespace sluice::proxy

// The pool's get() runs once per stream: its frame from the recycler (proxy/pooled_frame.hpp). So do the
// connection's own coroutines, for symmetry (they run once per connection).
template <class T, class... Args>
struct std::coroutine_traits<boost::asio::awaitable<T, boost::asio::any_io_executor>, sluice::proxy::H2UpstreamPool&,
                             Args...> {
  using promise_type = sluice::proxy::PooledFrame<T>;
};
template <class T, class... Args>
struct std::coroutine_traits<boost::asio::awaitable<T, boost::asio::any_io_executor>, sluice::proxy::H2Upstream&,
                             Args...> {
  using promise_type = sluice::proxy::PooledFrame<T>;
};
