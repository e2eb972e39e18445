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

using namespace sluice;
namespace fs = std::filesystem;

namespace {

// A temporary directory, removed with everything in it.
struct TempDir {
  TempDir() : path(fs::temp_directory_path() / ("sluice-tls-test-" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
  fs::path path;
};

// Writes a self-signed certificate for `host` (subjectAltName DNS, usable as its own CA) and its key.
void make_certificate(const std::string& host, const std::string& cert_path, const std::string& key_path) {
  static long serial = 1;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  REQUIRE(key);
  std::unique_ptr<X509, decltype(&X509_free)> cert(X509_new(), X509_free);
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(host.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "DNS:" + host},
                                   std::pair{NID_basic_constraints, std::string("critical,CA:TRUE")}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    REQUIRE(ext);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  REQUIRE(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  FILE* f = std::fopen(cert_path.c_str(), "w");
  REQUIRE(f);
  PEM_write_X509(f, cert.get());
  std::fclose(f);
  f = std::fopen(key_path.c_str(), "w");
  REQUIRE(f);
  PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

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

struct Files {
  TempDir dir;
  std::string cert = dir.file("server.crt"), key = dir.file("server.key");
  std::string other_cert = dir.file("other.crt"), other_key = dir.file("other.key");
  std::string garbage = dir.file("garbage.pem"), missing = dir.file("missing.pem");

  Files() {
    make_certificate("localhost", cert, key);
    make_certificate("other.example", other_cert, other_key);
    write_text(garbage, "not a certificate\n");
  }
};

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
