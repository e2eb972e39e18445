#include "proxy/tls.hpp"

#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace sluice::proxy {
namespace {

constexpr std::time_t kRecheckSeconds = 2;

std::time_t mtime_of(const std::string& path) {
  struct stat st{};
  if (path.empty() || ::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mtime;
}

// Runs one OpenSSL-backed step, turning its error into "what "file": reason".
template <class F>
bool step(std::string& error, std::string_view what, const std::string& file, F&& f) {
  boost::system::error_code ec;
  f(ec);
  if (!ec) return true;
  error = std::string(what) + " \"" + file + "\": " + ec.message();
  return false;
}

// TLS 1.2 and later only, both ways. No TLS 1.2 renegotiation: the TLS stream (tls_stream.hpp) relies on a
// write never having to read (TLS 1.3 has no renegotiation at all).
constexpr auto kProtocols = ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                            ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | SSL_OP_NO_RENEGOTIATION;

// Loads the certificate chain and its private key (PEM), the server's or the client's.
bool load_identity(ssl::context& ctx, const std::string& cert_file, const std::string& key_file, std::string& error) {
  return step(error, "tls.cert_file", cert_file, [&](auto& ec) { ctx.use_certificate_chain_file(cert_file, ec); }) &&
         step(error, "tls.key_file", key_file,
              [&](auto& ec) { ctx.use_private_key_file(key_file, ssl::context::pem, ec); });
}

// ALPN (RFC 7301): h2 when the client offers it, else http/1.1; a client offering neither gets no ALPN
// answer and speaks HTTP/1.1 as before.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void*) {
  static constexpr unsigned char kOurs[] = "\x02h2\x08http/1.1";
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kOurs, sizeof kOurs - 1, in, inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

bool alpn_is_h2(SSL* ssl) {
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &len);
  return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

std::shared_ptr<ssl::context> make_server_context(const config::TlsServer& cfg, std::string& error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
  ctx->set_options(kProtocols | ssl::context::single_dh_use);
  if (!load_identity(*ctx, cfg.cert_file, cfg.key_file, error)) return nullptr;
  if (!cfg.client_ca_file.empty()) {
    if (!step(error, "tls.client_ca_file", cfg.client_ca_file,
              [&](auto& ec) { ctx->load_verify_file(cfg.client_ca_file, ec); })) {
      return nullptr;
    }
    ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  SSL_CTX_set_alpn_select_cb(ctx->native_handle(), &select_alpn, nullptr);
  return ctx;
}

std::shared_ptr<ssl::context> make_client_context(const config::TlsClient& cfg, std::string& error) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(kProtocols);
  if (cfg.ca_file.empty()) {
    ctx->set_default_verify_paths();
  } else if (!step(error, "tls.ca_file", cfg.ca_file, [&](auto& ec) { ctx->load_verify_file(cfg.ca_file, ec); })) {
    return nullptr;
  }
  ctx->set_verify_mode(ssl::verify_peer);
  if (!cfg.cert_file.empty() && !load_identity(*ctx, cfg.cert_file, cfg.key_file, error)) return nullptr;
  return ctx;
}

std::vector<std::time_t> ServerTls::mtimes() const {
  return {mtime_of(cfg_.cert_file), mtime_of(cfg_.key_file), mtime_of(cfg_.client_ca_file)};
}

std::string ServerTls::load() {
  std::string error;
  auto ctx = make_server_context(cfg_, error);
  if (!ctx) return error;
  std::lock_guard lock(mutex_);
  ctx_ = std::move(ctx);
  loaded_mtimes_ = mtimes();
  return {};
}

std::shared_ptr<ssl::context> ServerTls::get() const {
  std::lock_guard lock(mutex_);
  return ctx_;
}

std::string ServerTls::check_reload() {
  const auto now = mtimes();
  {
    std::lock_guard lock(mutex_);
    if (now == loaded_mtimes_) return {};
  }
  std::string error;
  auto ctx = make_server_context(cfg_, error);
  std::lock_guard lock(mutex_);
  loaded_mtimes_ = now;  // do not retry a broken file every tick; the next change is tried again
  if (!ctx) return "tls reload of " + cfg_.cert_file + " failed, keeping the old certificate: " + error;
  ctx_ = std::move(ctx);
  return "tls certificate reloaded from " + cfg_.cert_file;
}

std::shared_ptr<ssl::context> ClientTlsCache::get(const config::TlsClient& cfg, std::string& error) {
  const auto key = cfg.ca_file + "|" + cfg.cert_file + "|" + cfg.key_file;
  auto& e = entries_[key];
  const auto now = std::time(nullptr);
  if (e.ctx && now - e.checked < kRecheckSeconds) return e.ctx;
  e.checked = now;
  std::vector<std::time_t> mt{mtime_of(cfg.ca_file), mtime_of(cfg.cert_file), mtime_of(cfg.key_file)};
  if (e.ctx && mt == e.mtimes) return e.ctx;
  auto ctx = make_client_context(cfg, error);
  if (!ctx) return e.ctx;  // keep the previous one, if any, when the new files are broken
  e.ctx = std::move(ctx);
  e.mtimes = std::move(mt);
  return e.ctx;
}

}  // namespace sluice::proxy
