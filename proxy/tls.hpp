// TLS contexts for listeners (server side, optional mTLS) and for upstream
// connections to remote gateways (client side, CA + name verification, optional
// client certificate). Certificates reload when their files change.
#pragma once

#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"
#include "net/net.hpp"

namespace sluice::proxy {

// Builds a server context from PEM files; `client_ca_file` non-empty requires and verifies client certs.
// Null and `error` set when a file cannot be used.
// Server contexts advertise ALPN "h2" and "http/1.1" (h2 preferred); see alpn_is_h2.
std::shared_ptr<ssl::context> make_server_context(const config::TlsServer& cfg, std::string& error);

// Whether the handshake done on `ssl` chose "h2" by ALPN.
bool alpn_is_h2(SSL* ssl);

// Builds a client context: verify the peer against `ca_file`, present `cert_file`/`key_file` when set.
// It keeps the last TLS session each upstream endpoint gave (offer_client_session).
std::shared_ptr<ssl::context> make_client_context(const config::TlsClient& cfg, std::string& error);

// Client-side session resumption, as nginx's proxy_ssl_session_reuse: the last session (TLS 1.3 ticket, or
// TLS 1.2 session) the endpoint named `key` gave over a connection made with this SSL's context is offered
// on this one, which then skips the certificate exchange and its verification; the sessions this connection
// receives replace it. `key` must outlive the connection (its pool key). Returns whether a session was
// offered; SSL_session_reused() after the handshake says whether the endpoint took it. Sessions live with
// their client context, which belongs to one worker: that worker's thread only.
bool offer_client_session(SSL* ssl, const std::string& key);

// A listener's server context that follows its files: check_reload() (control thread, periodically)
// rebuilds it when a file's modification time changed; a broken new file keeps the old context.
class ServerTls {
 public:
  explicit ServerTls(config::TlsServer cfg) : cfg_(std::move(cfg)) {}

  // Initial load. Returns an error text, empty on success.
  std::string load();
  // The context for a new connection. Any thread (a mutex, taken once per accepted connection).
  std::shared_ptr<ssl::context> get() const;
  // Rebuilds when a file changed. Returns a log line when something happened, else empty.
  std::string check_reload();

 private:
  std::vector<std::time_t> mtimes() const;

  config::TlsServer cfg_;
  mutable std::mutex mutex_;
  std::shared_ptr<ssl::context> ctx_;
  std::vector<std::time_t> loaded_mtimes_;
};

// Per-worker cache of client contexts by file set; rebuilt when the files change (checked at most every
// few seconds). Worker thread only.
class ClientTlsCache {
 public:
  std::shared_ptr<ssl::context> get(const config::TlsClient& cfg, std::string& error);

 private:
  struct Entry {
    std::shared_ptr<ssl::context> ctx;
    std::vector<std::time_t> mtimes;
    std::time_t checked = 0;
  };
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace sluice::proxy
