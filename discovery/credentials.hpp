// Where the Kubernetes API is and how to authenticate: kubeconfig (YAML) or the pod's service account.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "discovery/options.hpp"

namespace sluice::discovery {

struct Credentials {
  std::string scheme = "https";
  std::string host;            // DNS name or IP literal (no brackets)
  std::string port = "443";
  std::string base_path;       // server URL path, e.g. "/k8s/clusters/c1"; empty for a plain server

  std::string ca_pem;          // empty: the system's default trust store
  bool insecure_skip_verify = false;
  std::string client_cert_pem; // mTLS, optional (both or neither)
  std::string client_key_pem;

  std::string token;           // static bearer token
  std::string token_file;      // re-read before every request (service-account tokens rotate)

  std::string default_namespace = "default";  // the context's or the pod's namespace
  std::string origin;          // human description: "kubeconfig /x (context c)" or "in-cluster"
};

struct CredentialsResult {
  std::optional<Credentials> credentials;
  std::string error;           // set when credentials is empty; names the file and field
};

// Parses kubeconfig text. Relative file paths are taken relative to `base_dir`. `context` empty:
// current-context. Referenced files (CA, cert, key) are read here so that a missing one is a startup
// error; the token file is only checked for existence. Never throws. Any thread.
CredentialsResult parse_kubeconfig(std::string_view yaml_text, const std::string& base_dir,
                                   const std::string& context);

// In-cluster configuration: KUBERNETES_SERVICE_HOST/PORT and `dir`/{token,ca.crt,namespace}.
CredentialsResult in_cluster_credentials(const EnvLookup& env, const std::string& dir);

// The lookup order of the options: explicit kubeconfig path, in-cluster env, $KUBECONFIG (first
// existing file of a ':' list), ~/.kube/config. Never throws.
CredentialsResult load_credentials(const KubeOptions& options);

// The bearer token to send now: the token file's current content (trimmed) when set, else the static
// token; empty when neither.
std::string current_token(const Credentials& credentials);

// Reads a whole file; nullopt when unreadable.
std::optional<std::string> read_file(const std::string& path);

// Decodes standard base64 (whitespace ignored); nullopt when malformed.
std::optional<std::string> decode_base64(std::string_view text);

}  // namespace sluice::discovery
