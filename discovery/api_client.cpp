#include "discovery/api_client.hpp"

#include <array>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

namespace sluice::discovery {
namespace {

using boost::system::error_code;
using net::redirect_error;
using net::use_awaitable;

constexpr std::size_t error_body_limit = 64 * 1024;
constexpr std::size_t stream_chunk = 64 * 1024;
constexpr const char* user_agent = "sluice-discovery/0.1";

bool is_ip_literal(const std::string& host) {
  error_code ec;
  net::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

std::shared_ptr<ssl::context> make_tls_context(const Credentials& c, std::string& error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (c.insecure_skip_verify) {
    ctx->set_verify_mode(ssl::verify_none);
  } else {
    ctx->set_verify_mode(ssl::verify_peer);
    if (c.ca_pem.empty()) ctx->set_default_verify_paths(ec);
    else ctx->add_certificate_authority(net::buffer(c.ca_pem), ec);
    if (ec) {
      error = "certificate authority: " + ec.message();
      return nullptr;
    }
  }
  if (!c.client_cert_pem.empty()) {
    ctx->use_certificate_chain(net::buffer(c.client_cert_pem), ec);
    if (ec) {
      error = "client certificate: " + ec.message();
      return nullptr;
    }
    ctx->use_private_key(net::buffer(c.client_key_pem), ssl::context::pem, ec);
    if (ec) {
      error = "client key: " + ec.message();
      return nullptr;
    }
  }
  return ctx;
}

ApiConnection::ApiConnection(net::any_io_executor executor, std::shared_ptr<ssl::context> tls,
                             std::shared_ptr<const Credentials> credentials, Timeouts timeouts)
    : executor_(std::move(executor)), tls_(std::move(tls)), credentials_(std::move(credentials)),
      timeouts_(timeouts) {}

void ApiConnection::set_credentials(std::shared_ptr<const Credentials> credentials,
                                    std::shared_ptr<ssl::context> tls) {
  credentials_ = std::move(credentials);
  tls_ = std::move(tls);
}

void ApiConnection::close() {
  if (!stream_) return;
  error_code ignored;
  beast::get_lowest_layer(*stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
  beast::get_lowest_layer(*stream_).close();
}

net::awaitable<void> ApiConnection::connect(error_code& ec) {
  stream_.reset();
  buffer_.clear();
  detail_.clear();
  stream_.emplace(executor_, *tls_);
  // Held for the whole connect: set_credentials() may replace credentials_ while it is suspended.
  const auto held = credentials_;
  const Credentials& c = *held;
  SSL* ssl = stream_->native_handle();
  // Name verification by OpenSSL itself: an IP literal must match an IP SAN, a name a DNS SAN.
  if (!c.insecure_skip_verify) {
    if (is_ip_literal(c.host)) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), c.host.c_str());
    else SSL_set1_host(ssl, c.host.c_str());
  }
  if (!is_ip_literal(c.host)) SSL_set_tlsext_host_name(ssl, c.host.c_str());

  tcp::resolver resolver(executor_);
  auto endpoints = co_await resolver.async_resolve(c.host, c.port, redirect_error(use_awaitable, ec));
  if (ec) co_return;
  auto& tcp_layer = beast::get_lowest_layer(*stream_);
  tcp_layer.expires_after(timeouts_.connect);
  co_await tcp_layer.async_connect(endpoints, redirect_error(use_awaitable, ec));
  if (ec) co_return;
  tcp_layer.socket().set_option(tcp::no_delay(true), ec);
  tcp_layer.expires_after(timeouts_.connect);
  co_await stream_->async_handshake(ssl::stream_base::client, redirect_error(use_awaitable, ec));
  if (ec) {
    long verify = SSL_get_verify_result(ssl);
    detail_ = "TLS handshake with " + c.host + ":" + c.port + ": " + ec.message();
    if (verify != X509_V_OK) detail_ += std::string(" (certificate: ") + X509_verify_cert_error_string(verify) + ")";
  }
}

net::awaitable<void> ApiConnection::send(http::verb verb, const std::string& target, const std::string& body,
                                         std::string_view content_type, error_code& ec) {
  if (!stream_ || !beast::get_lowest_layer(*stream_).socket().is_open()) {
    co_await connect(ec);
    if (ec) co_return;
  }
  const Credentials& c = *credentials_;
  http::request<http::string_body> req{verb, c.base_path + target, 11};
  req.set(http::field::host, c.host.find(':') != std::string::npos ? "[" + c.host + "]:" + c.port
                                                                    : c.host + ":" + c.port);
  req.set(http::field::user_agent, user_agent);
  req.set(http::field::accept, "application/json");
  if (auto token = current_token(c); !token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!body.empty()) {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.prepare_payload();
  req.keep_alive(true);
  beast::get_lowest_layer(*stream_).expires_after(timeouts_.request);
  co_await http::async_write(*stream_, req, redirect_error(use_awaitable, ec));
}

net::awaitable<ApiResponse> ApiConnection::get(std::string target, std::size_t max_body, error_code& ec) {
  co_return co_await request(http::verb::get, std::move(target), {}, max_body, ec);
}

net::awaitable<ApiResponse> ApiConnection::request(http::verb verb, std::string target, std::string body,
                                                   std::size_t max_body, error_code& ec,
                                                   std::string_view content_type) {
  ApiResponse out;
  // A kept-alive connection may have been closed by the server meanwhile: one fresh retry.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool reused = stream_ && beast::get_lowest_layer(*stream_).socket().is_open();
    ec = {};
    co_await send(verb, target, body, content_type, ec);
    http::response_parser<http::string_body> parser;
    parser.body_limit(max_body);
    if (!ec) {
      beast::get_lowest_layer(*stream_).expires_after(timeouts_.request);
      co_await http::async_read(*stream_, buffer_, parser, redirect_error(use_awaitable, ec));
    }
    if (ec) {
      stream_.reset();
      if (reused && ec != net::error::operation_aborted) continue;
      co_return out;
    }
    out.status = parser.get().result_int();
    out.body = std::move(parser.get().body());
    if (!parser.get().keep_alive()) stream_.reset();
    co_return out;
  }
  co_return out;
}

net::awaitable<ApiResponse> ApiConnection::stream(std::string target, std::chrono::seconds idle,
                                                  const std::function<bool(std::string_view)>& on_data,
                                                  error_code& ec) {
  ApiResponse out;
  co_await send(http::verb::get, target, {}, {}, ec);
  if (ec) {
    stream_.reset();
    co_return out;
  }
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);  // a watch streams for as long as the server keeps it open
  auto& tcp_layer = beast::get_lowest_layer(*stream_);
  tcp_layer.expires_after(timeouts_.request);
  co_await http::async_read_header(*stream_, buffer_, parser, redirect_error(use_awaitable, ec));
  if (ec) {
    stream_.reset();
    co_return out;
  }
  out.status = parser.get().result_int();
  if (out.status == 200 && !on_data(std::string_view())) {
    stream_.reset();
    co_return out;
  }
  std::array<char, stream_chunk> chunk;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    tcp_layer.expires_after(out.status == 200 ? idle : timeouts_.request);
    // read_some, not read: read() would wait for the chunk buffer to fill, holding events back.
    co_await http::async_read_some(*stream_, buffer_, parser, redirect_error(use_awaitable, ec));
    if (ec == http::error::need_buffer) ec = {};  // the chunk is full: not an error
    // Bytes delivered before an error are still events: hand them over first.
    std::string_view got(chunk.data(), chunk.size() - parser.get().body().size);
    if (out.status == 200) {
      if (!got.empty() && !on_data(got)) break;
    } else if (out.body.size() < error_body_limit) {
      out.body.append(got.substr(0, error_body_limit - out.body.size()));
    }
    if (ec) break;
  }
  stream_.reset();
  co_return out;
}

}  // namespace sluice::discovery
