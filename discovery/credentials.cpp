#include "discovery/credentials.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace sluice::discovery {
namespace {

namespace fs = std::filesystem;

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

CredentialsResult fail(std::string message) { return CredentialsResult{std::nullopt, std::move(message)}; }

std::string resolve(const std::string& path, const std::string& base_dir) {
  if (path.empty() || fs::path(path).is_absolute() || base_dir.empty()) return path;
  return (fs::path(base_dir) / path).string();
}

// Splits "https://host:port/path" into the credential's fields. Returns an error or empty.
std::string parse_server(const std::string& server, Credentials& c) {
  auto scheme_end = server.find("://");
  if (scheme_end == std::string::npos) return "server '" + server + "': expected https://host[:port]";
  c.scheme = server.substr(0, scheme_end);
  if (c.scheme != "https") return "server '" + server + "': only https is supported";
  std::string rest = server.substr(scheme_end + 3);
  auto slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  c.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!c.base_path.empty() && c.base_path.back() == '/') c.base_path.pop_back();
  c.port = "443";
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) return "server '" + server + "': unterminated IPv6 literal";
    c.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return "server '" + server + "': malformed port";
      c.port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    c.host = authority.substr(0, colon);
    if (colon != std::string::npos) c.port = authority.substr(colon + 1);
  }
  if (c.host.empty()) return "server '" + server + "': no host";
  if (c.port.empty() || c.port.size() > 5 || c.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(c.port) == 0 || std::stoul(c.port) > 65535)
    return "server '" + server + "': port out of range";
  return {};
}

// Reads `<field>-data` (base64) or `<field>` (a file) of a YAML map into `out`. Returns an error or empty.
std::string read_pem(const YAML::Node& node, const std::string& field, const std::string& base_dir,
                     const std::string& where, std::string& out) {
  if (auto data = node[field + "-data"]; data && !data.IsNull()) {
    auto decoded = decode_base64(data.as<std::string>());
    if (!decoded) return where + "." + field + "-data: not valid base64";
    out = std::move(*decoded);
    return {};
  }
  if (auto file = node[field]; file && !file.IsNull()) {
    auto path = resolve(file.as<std::string>(), base_dir);
    auto content = read_file(path);
    if (!content) return where + "." + field + ": cannot read " + path;
    out = std::move(*content);
  }
  return {};
}

// Finds the entry named `name` in a kubeconfig list (clusters, users, contexts) and returns its body.
YAML::Node find_named(const YAML::Node& list, const std::string& key, const std::string& name) {
  if (!list || !list.IsSequence()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& entry : list)
    if (entry["name"] && entry["name"].as<std::string>() == name) return entry[key];
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string env_or_getenv(const EnvLookup& env, const char* name) {
  if (env) return env(name);
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

std::optional<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return ss.str();
}

std::optional<std::string> decode_base64(std::string_view text) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  std::size_t padding = 0;
  for (char ch : text) {
    if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') continue;
    if (ch == '=') { ++padding; continue; }
    if (padding) return std::nullopt;  // data after padding
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+') v = 62;
    else if (ch == '/') v = 63;
    else return std::nullopt;
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
    }
  }
  if (padding > 2) return std::nullopt;
  return out;
}

CredentialsResult parse_kubeconfig(std::string_view yaml_text, const std::string& base_dir,
                                   const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return fail(std::string("not valid YAML: ") + e.what());
  }
  try {
    if (!root.IsMap()) return fail("not a kubeconfig (expected a YAML map)");
    std::string context_name = context;
    if (context_name.empty()) {
      if (!root["current-context"] || root["current-context"].as<std::string>().empty())
        return fail("no current-context and no context given");
      context_name = root["current-context"].as<std::string>();
    }
    auto ctx = find_named(root["contexts"], "context", context_name);
    if (!ctx || !ctx.IsMap()) return fail("context '" + context_name + "' not found");
    if (!ctx["cluster"]) return fail("context '" + context_name + "': no cluster");
    std::string cluster_name = ctx["cluster"].as<std::string>();
    std::string user_name = ctx["user"] ? ctx["user"].as<std::string>() : "";

    auto cluster = find_named(root["clusters"], "cluster", cluster_name);
    if (!cluster || !cluster.IsMap()) return fail("cluster '" + cluster_name + "' not found");
    Credentials c;
    if (!cluster["server"]) return fail("cluster '" + cluster_name + "': no server");
    if (auto e = parse_server(cluster["server"].as<std::string>(), c); !e.empty())
      return fail("cluster '" + cluster_name + "': " + e);
    std::string where = "cluster '" + cluster_name + "'";
    if (auto e = read_pem(cluster, "certificate-authority", base_dir, where, c.ca_pem); !e.empty()) return fail(e);
    if (cluster["insecure-skip-tls-verify"]) c.insecure_skip_verify = cluster["insecure-skip-tls-verify"].as<bool>();
    if (ctx["namespace"] && !ctx["namespace"].as<std::string>().empty())
      c.default_namespace = ctx["namespace"].as<std::string>();

    if (!user_name.empty()) {
      auto user = find_named(root["users"], "user", user_name);
      if (!user) return fail("user '" + user_name + "' not found");
      if (user.IsMap()) {
        where = "user '" + user_name + "'";
        if (auto e = read_pem(user, "client-certificate", base_dir, where, c.client_cert_pem); !e.empty()) return fail(e);
        if (auto e = read_pem(user, "client-key", base_dir, where, c.client_key_pem); !e.empty()) return fail(e);
        if (c.client_cert_pem.empty() != c.client_key_pem.empty())
          return fail(where + ": client-certificate and client-key must be given together");
        if (user["token"]) c.token = trim(user["token"].as<std::string>());
        if (user["tokenFile"]) {
          c.token_file = resolve(user["tokenFile"].as<std::string>(), base_dir);
          if (!read_file(c.token_file)) return fail(where + ".tokenFile: cannot read " + c.token_file);
        }
        if (user["exec"] || user["auth-provider"])
          if (c.token.empty() && c.token_file.empty() && c.client_cert_pem.empty())
            return fail(where + ": exec and auth-provider credentials are not supported");
      }
    }
    c.origin = "context " + context_name;
    return CredentialsResult{std::move(c), {}};
  } catch (const YAML::Exception& e) {
    return fail(std::string("malformed kubeconfig: ") + e.what());
  }
}

CredentialsResult in_cluster_credentials(const EnvLookup& env, const std::string& dir) {
  Credentials c;
  c.host = env_or_getenv(env, "KUBERNETES_SERVICE_HOST");
  c.port = env_or_getenv(env, "KUBERNETES_SERVICE_PORT");
  if (c.host.empty() || c.port.empty()) return fail("in-cluster: KUBERNETES_SERVICE_HOST/PORT not set");
  if (!c.host.empty() && c.host.front() == '[') c.host = c.host.substr(1, c.host.size() - 2);
  c.token_file = dir + "/token";
  auto token = read_file(c.token_file);
  if (!token || trim(*token).empty()) return fail("in-cluster: cannot read a token from " + c.token_file);
  auto ca = read_file(dir + "/ca.crt");
  if (!ca) return fail("in-cluster: cannot read " + dir + "/ca.crt");
  c.ca_pem = std::move(*ca);
  if (auto ns = read_file(dir + "/namespace"); ns && !trim(*ns).empty()) c.default_namespace = trim(*ns);
  c.origin = "in-cluster " + c.host + ":" + c.port;
  return CredentialsResult{std::move(c), {}};
}

CredentialsResult load_credentials(const KubeOptions& options) {
  auto from_file = [&](const std::string& path) {
    auto text = read_file(path);
    if (!text) return fail("kubeconfig " + path + ": cannot read");
    auto r = parse_kubeconfig(*text, fs::path(path).parent_path().string(), options.context);
    if (!r.credentials) return fail("kubeconfig " + path + ": " + r.error);
    r.credentials->origin = "kubeconfig " + path + " (" + r.credentials->origin + ")";
    return r;
  };
  if (!options.kubeconfig.empty()) return from_file(options.kubeconfig);
  if (!env_or_getenv(options.env, "KUBERNETES_SERVICE_HOST").empty())
    return in_cluster_credentials(options.env, options.in_cluster_dir);
  std::string list = env_or_getenv(options.env, "KUBECONFIG");
  std::size_t start = 0;
  while (!list.empty() && start <= list.size()) {
    auto end = list.find(':', start);
    std::string path = list.substr(start, end == std::string::npos ? std::string::npos : end - start);
    std::error_code ec;
    if (!path.empty() && fs::exists(path, ec)) return from_file(path);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::string home = env_or_getenv(options.env, "HOME");
  if (!home.empty()) {
    std::error_code ec;
    std::string path = home + "/.kube/config";
    if (fs::exists(path, ec)) return from_file(path);
  }
  return fail("no Kubernetes credentials: set kubernetes.kubeconfig, run in a pod, set $KUBECONFIG or "
              "create ~/.kube/config");
}

std::string current_token(const Credentials& credentials) {
  if (!credentials.token_file.empty()) {
    if (auto t = read_file(credentials.token_file)) return trim(*t);
  }
  return credentials.token;
}

}  // namespace sluice::discovery
