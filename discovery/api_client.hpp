// One HTTPS connection to the Kubernetes API server (Boost.Beast over OpenSSL), used by one watch:
// GET with a whole body (list pages) and GET with a streamed body (watch events).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "discovery/credentials.hpp"
#include "net/net.hpp"

namespace sluice::discovery {

// TLS client context for `credentials`: verify_peer against the CA (the system store when none is
// given) unless insecure-skip-tls-verify, and the client certificate/key when given. nullptr and
// `error` set when a PEM does not load. Any thread.
std::shared_ptr<ssl::context> make_tls_context(const Credentials& credentials, std::string& error);

struct ApiResponse {
  unsigned status = 0;
  std::string body;
};

// Not thread-safe: one coroutine at a time, on the control thread. Operations report failures in
// `ec` (connect, TLS verification, timeouts, a broken stream) rather than throwing.
class ApiConnection {
 public:
  struct Timeouts {
    std::chrono::seconds connect{10};
    std::chrono::seconds request{30};
  };

  ApiConnection(net::any_io_executor executor, std::shared_ptr<ssl::context> tls,
                std::shared_ptr<const Credentials> credentials, Timeouts timeouts);

  // GET `target` (path and query, without the server's base path) and read the whole body
  // (at most `max_body` bytes). Connects first when needed; keeps the connection for reuse.
  net::awaitable<ApiResponse> get(std::string target, std::size_t max_body, boost::system::error_code& ec);

  // Any verb with an optional JSON body (`content_type` names its media type: application/json for
  // POST/PUT/DELETE options, a patch type for PATCH); the whole response body is read. The writes of
  // `sluice sync` go through it. Same connection handling and one-retry rule as get().
  net::awaitable<ApiResponse> request(http::verb verb, std::string target, std::string body,
                                      std::size_t max_body, boost::system::error_code& ec,
                                      std::string_view content_type = "application/json");

  // GET `target` and stream the body: when the status is 200, `on_data` is called once with an empty
  // chunk as soon as the header is in (the stream is established), then with each chunk as it
  // arrives; it returns false to stop reading. Another status: its body (up to 64 KiB) is returned in
  // the response instead. Silence longer than `idle` is a timeout error. The connection is closed
  // afterwards (a watch is not reused).
  net::awaitable<ApiResponse> stream(std::string target, std::chrono::seconds idle,
                                     const std::function<bool(std::string_view)>& on_data,
                                     boost::system::error_code& ec);

  // Closes the connection; a pending operation completes with operation_aborted. Control thread.
  void close();

  // Credentials re-read after a 401 (KubernetesSource): the next connection and the next request use
  // them; an open connection (a watch streaming) keeps its TLS session. Control thread.
  void set_credentials(std::shared_ptr<const Credentials> credentials, std::shared_ptr<ssl::context> tls);

  // A description of the last connect failure beyond the error code (e.g. the TLS verification cause).
  const std::string& detail() const { return detail_; }

 private:
  using Stream = beast::ssl_stream<beast::tcp_stream>;

  net::awaitable<void> connect(boost::system::error_code& ec);
  net::awaitable<void> send(http::verb verb, const std::string& target, const std::string& body,
                            std::string_view content_type, boost::system::error_code& ec);

  net::any_io_executor executor_;
  std::shared_ptr<ssl::context> tls_;
  std::shared_ptr<const Credentials> credentials_;
  Timeouts timeouts_;
  std::optional<Stream> stream_;
  beast::flat_buffer buffer_;
  std::string detail_;
};

}  // namespace sluice::discovery
