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

// The sessions a client context keeps, one per endpoint (offer_client_session), freed with the context.
struct ClientSessions {
  // Bounded so that endpoints that come and go (pods rescheduled) do not pile up; a full store starts over.
  static constexpr std::size_t kMaxEndpoints = 4096;
  ClientSessions() = default;
  ClientSessions(const ClientSessions&) = delete;
  ClientSessions& operator=(const ClientSessions&) = delete;
  ~ClientSessions() { clear(); }
  void clear() {
    for (auto& [key, session] : by_key) SSL_SESSION_free(session);
    by_key.clear();
  }
  std::unordered_map<std::string, SSL_SESSION*> by_key;
};

void free_client_sessions(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<ClientSessions*>(ptr);
}

int sessions_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, free_client_sessions);
  return index;
}

int session_key_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

ClientSessions* sessions_of(SSL* ssl) {
  return static_cast<ClientSessions*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), sessions_index()));
}

// OpenSSL's "new session" callback (a TLS 1.3 ticket arrives after the handshake, in a read): keep it for
// the connection's endpoint. Returning 1 keeps OpenSSL's reference.
int keep_client_session(SSL* ssl, SSL_SESSION* session) {
  const auto* key = static_cast<const std::string*>(SSL_get_ex_data(ssl, session_key_index()));
  ClientSessions* store = sessions_of(ssl);
  if (!key || !store) return 0;
  auto it = store->by_key.find(*key);
  if (it == store->by_key.end()) {
    if (store->by_key.size() >= ClientSessions::kMaxEndpoints) store->clear();
    store->by_key.emplace(*key, session);
  } else {
    SSL_SESSION_free(it->second);
    it->second = session;
  }
  return 1;
}

}  // namespace

bool offer_client_session(SSL* ssl, const std::string& key) {
  SSL_set_ex_data(ssl, session_key_index(), const_cast<std::string*>(&key));
  ClientSessions* store = sessions_of(ssl);
  if (!store) return false;
  const auto it = store->by_key.find(key);
  return it != store->by_key.end() && SSL_set_session(ssl, it->second) == 1;
}

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
  // Session resumption (TLS 1.3 tickets, OpenSSL's default) needs a session id context once client
  // certificates are verified: without one, every resumption attempt is refused and falls back to a
  // full handshake.
  static constexpr unsigned char kSessionContext[] = "sluice";
  SSL_CTX_set_session_id_context(ctx->native_handle(), kSessionContext, sizeof kSessionContext - 1);
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
  // Sessions are kept per endpoint by keep_client_session, not in OpenSSL's own cache (which a client
  // never looks up by itself).
  SSL_CTX_set_session_cache_mode(ctx->native_handle(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_set_ex_data(ctx->native_handle(), sessions_index(), new ClientSessions);
  SSL_CTX_sess_set_new_cb(ctx->native_handle(), keep_client_session);
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
