// TLS configuration (proxy/tls.hpp): server and client contexts from PEM files, errors that name the
// setting and the file, certificate reload, and the per-worker client context cache. The certificates are
// made here (self-signed, EC P-256) in a temporary directory; the handshakes run over loopback.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy/tls.hpp"
#include "tls_test_support.hpp"

using namespace sluice;
using sluice::test::Files;
using sluice::test::make_certificate;
namespace fs = std::filesystem;

namespace {

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// Moves the file's modification time on by `seconds` (reload looks at whole seconds; no sleeping here).
void touch_later(const std::string& path, int seconds) {
  fs::last_write_time(path, fs::last_write_time(path) + std::chrono::seconds(seconds));
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// One TLS handshake over loopback between the two contexts; the client checks the name `host`.
bool handshake(ssl::context& server_ctx, ssl::context& client_ctx, const std::string& host) {
  net::io_context ioc{1};
  tcp::acceptor acceptor(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  ssl::stream<tcp::socket> server(ioc, server_ctx), client(ioc, client_ctx);
  client.next_layer().connect(acceptor.local_endpoint());
  acceptor.accept(server.next_layer());
  client.set_verify_callback(ssl::host_name_verification(host));
  boost::system::error_code server_ec, client_ec;
  server.async_handshake(ssl::stream_base::server, [&](boost::system::error_code ec) {
    server_ec = ec;
    if (ec) server.next_layer().close();
  });
  client.async_handshake(ssl::stream_base::client, [&](boost::system::error_code ec) {
    client_ec = ec;
    if (ec) client.next_layer().close();
  });
  ioc.run_for(std::chrono::seconds(10));
  return !server_ec && !client_ec;
}


}  // namespace

TEST_CASE("tls: a server context's errors name the setting and the file", "[proxy]") {
  Files f;
  std::string error;
  CHECK(proxy::make_server_context({f.missing, f.key, ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.cert_file \"" + f.missing + "\": "));
  CHECK(proxy::make_server_context({f.garbage, f.key, ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.cert_file \"" + f.garbage + "\": "));
  CHECK(proxy::make_server_context({f.cert, f.missing, ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.key_file \"" + f.missing + "\": "));
  // A key that is not the certificate's.
  CHECK(proxy::make_server_context({f.cert, f.other_key, ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.key_file \"" + f.other_key + "\": "));
  CHECK(proxy::make_server_context({f.cert, f.key, f.missing}, error) == nullptr);
  CHECK(starts_with(error, "tls.client_ca_file \"" + f.missing + "\": "));
}

TEST_CASE("tls: a server context; with a client CA it requires client certificates", "[proxy]") {
  Files f;
  std::string error;
  auto plain = proxy::make_server_context({f.cert, f.key, ""}, error);
  REQUIRE(plain);
  CHECK(error.empty());
  CHECK(SSL_CTX_get_verify_mode(plain->native_handle()) == SSL_VERIFY_NONE);
  // TLS 1.2 at least.
  CHECK((SSL_CTX_get_options(plain->native_handle()) & SSL_OP_NO_TLSv1_1) != 0);

  auto mtls = proxy::make_server_context({f.cert, f.key, f.other_cert}, error);
  REQUIRE(mtls);
  CHECK(SSL_CTX_get_verify_mode(mtls->native_handle()) == (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT));
}

TEST_CASE("tls: a client context's errors name the setting and the file", "[proxy]") {
  Files f;
  std::string error;
  CHECK(proxy::make_client_context({f.missing, "", "", ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.ca_file \"" + f.missing + "\": "));
  CHECK(proxy::make_client_context({f.garbage, "", "", ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.ca_file \"" + f.garbage + "\": "));
  CHECK(proxy::make_client_context({f.cert, f.missing, f.key, ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.cert_file \"" + f.missing + "\": "));
  CHECK(proxy::make_client_context({f.cert, f.cert, f.missing, ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.key_file \"" + f.missing + "\": "));

  error.clear();
  auto system_cas = proxy::make_client_context({"", "", "", ""}, error);  // no CA file: the system's
  REQUIRE(system_cas);
  CHECK(error.empty());
  CHECK(SSL_CTX_get_verify_mode(system_cas->native_handle()) == SSL_VERIFY_PEER);
}

TEST_CASE("tls: the client verifies the server against its CA file and the name", "[proxy]") {
  Files f;
  std::string error;
  auto server = proxy::make_server_context({f.cert, f.key, ""}, error);
  auto trusting = proxy::make_client_context({f.cert, "", "", ""}, error);
  auto other_ca = proxy::make_client_context({f.other_cert, "", "", ""}, error);
  REQUIRE(server);
  REQUIRE(trusting);
  REQUIRE(other_ca);
  CHECK(handshake(*server, *trusting, "localhost"));
  CHECK_FALSE(handshake(*server, *trusting, "elsewhere.example"));  // not the certificate's name
  CHECK_FALSE(handshake(*server, *other_ca, "localhost"));          // not signed by the client's CA

  // mTLS: the server requires a client certificate signed by its client CA.
  auto mtls = proxy::make_server_context({f.cert, f.key, f.other_cert}, error);
  auto with_cert = proxy::make_client_context({f.cert, f.other_cert, f.other_key, ""}, error);
  REQUIRE(mtls);
  REQUIRE(with_cert);
  CHECK(handshake(*mtls, *with_cert, "localhost"));
  CHECK_FALSE(handshake(*mtls, *trusting, "localhost"));  // no client certificate
}

TEST_CASE("tls: a listener's context reloads when its files change, and keeps the old one when broken",
          "[proxy]") {
  Files f;
  proxy::ServerTls missing({f.missing, f.key, ""});
  CHECK(starts_with(missing.load(), "tls.cert_file \"" + f.missing + "\": "));

  proxy::ServerTls tls({f.cert, f.key, ""});
  REQUIRE(tls.load().empty());
  const auto first = tls.get();
  REQUIRE(first);
  CHECK(tls.check_reload().empty());  // nothing changed
  CHECK(tls.get() == first);

  // New files (another certificate for the same name), with a later modification time.
  make_certificate("localhost", f.cert, f.key);
  touch_later(f.cert, 5);
  touch_later(f.key, 5);
  CHECK(tls.check_reload() == "tls certificate reloaded from " + f.cert);
  const auto second = tls.get();
  CHECK(second != first);

  // A broken certificate is refused: the running context stays, and the same files are not tried again.
  write_text(f.cert, "truncated\n");
  touch_later(f.cert, 10);
  const auto line = tls.check_reload();
  CHECK(starts_with(line, "tls reload of " + f.cert + " failed, keeping the old certificate: tls.cert_file"));
  CHECK(tls.get() == second);
  CHECK(tls.check_reload().empty());
}

TEST_CASE("tls: a worker's client contexts are cached by file set", "[proxy]") {
  Files f;
  proxy::ClientTlsCache cache;
  std::string error;
  CHECK(cache.get({f.missing, "", "", ""}, error) == nullptr);
  CHECK(starts_with(error, "tls.ca_file \"" + f.missing + "\": "));

  error.clear();
  const config::TlsClient cfg{f.cert, "", "", "localhost"};
  auto a = cache.get(cfg, error);
  REQUIRE(a);
  CHECK(error.empty());
  CHECK(cache.get(cfg, error) == a);  // the same files: the same context
  auto b = cache.get({f.other_cert, "", "", ""}, error);
  REQUIRE(b);
  CHECK(b != a);
}
