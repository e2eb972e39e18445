#include <filesystem>
#include <fstream>
#include <map>

#include <catch2/catch.hpp>

#include "discovery/credentials.hpp"

using namespace sluice::discovery;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("sluice-cred-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  static int& counter() { static int c = 0; return c; }
  std::string write(const std::string& name, const std::string& content) const {
    std::ofstream(path / name) << content;
    return (path / name).string();
  }
};

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const char* name) {
    auto it = vars.find(name);
    return it == vars.end() ? std::string() : it->second;
  };
}

// base64("CA-PEM") and base64("CERT") / base64("KEY")
const char* two_contexts = R"(apiVersion: v1
kind: Config
current-context: one
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: Q0EtUEVN
- name: c2
  cluster:
    server: https://[::1]:7443/prefix/
    certificate-authority: ca.crt
    insecure-skip-tls-verify: true
users:
- name: u1
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
- name: u2
  user:
    token: " abc123 "
contexts:
- name: one
  context: {cluster: c1, user: u1, namespace: team}
- name: two
  context: {cluster: c2, user: u2}
)";

}  // namespace

TEST_CASE("kubeconfig: current context with inline data", "[discovery]") {
  auto r = parse_kubeconfig(two_contexts, "/nonexistent", "");
  REQUIRE(r.credentials);
  const auto& c = *r.credentials;
  CHECK(c.host == "127.0.0.1");
  CHECK(c.port == "6443");
  CHECK(c.base_path.empty());
  CHECK(c.ca_pem == "CA-PEM");
  CHECK(c.client_cert_pem == "CERT");
  CHECK(c.client_key_pem == "KEY");
  CHECK(c.token.empty());
  CHECK(c.default_namespace == "team");
  CHECK_FALSE(c.insecure_skip_verify);
}

TEST_CASE("kubeconfig: explicit context, files relative to the kubeconfig, token, IPv6", "[discovery]") {
  TempDir dir;
  dir.write("ca.crt", "FILE-CA");
  auto r = parse_kubeconfig(two_contexts, dir.path.string(), "two");
  REQUIRE(r.credentials);
  const auto& c = *r.credentials;
  CHECK(c.host == "::1");
  CHECK(c.port == "7443");
  CHECK(c.base_path == "/prefix");
  CHECK(c.ca_pem == "FILE-CA");
  CHECK(c.insecure_skip_verify);
  CHECK(c.token == "abc123");
  CHECK(current_token(c) == "abc123");
  CHECK(c.default_namespace == "default");
}

TEST_CASE("kubeconfig: errors name what is wrong", "[discovery]") {
  CHECK(parse_kubeconfig(two_contexts, "/nonexistent", "two").error.find("certificate-authority: cannot read") !=
        std::string::npos);
  CHECK(parse_kubeconfig(two_contexts, "/x", "three").error.find("context 'three' not found") != std::string::npos);
  CHECK(parse_kubeconfig("a: [", "/x", "").error.find("YAML") != std::string::npos);
  CHECK(parse_kubeconfig("clusters: []", "/x", "").error.find("current-context") != std::string::npos);
  std::string bad = two_contexts;
  bad.replace(bad.find("Q0EtUEVN"), 8, "no$tb64%");
  CHECK(parse_kubeconfig(bad, "/x", "").error.find("certificate-authority-data: not valid base64") != std::string::npos);
  std::string http = two_contexts;
  http.replace(http.find("https://127"), 5, "http");
  CHECK(parse_kubeconfig(http, "/x", "").error.find("only https") != std::string::npos);
}

TEST_CASE("kubeconfig tokenFile is re-read on every use", "[discovery]") {
  TempDir dir;
  dir.write("token", "first\n");
  std::string cfg = R"(current-context: c
clusters: [{name: k, cluster: {server: "https://localhost:1234"}}]
users: [{name: u, user: {tokenFile: token}}]
contexts: [{name: c, context: {cluster: k, user: u}}]
)";
  auto r = parse_kubeconfig(cfg, dir.path.string(), "");
  REQUIRE(r.credentials);
  CHECK(r.credentials->host == "localhost");
  CHECK(current_token(*r.credentials) == "first");
  dir.write("token", "second");
  CHECK(current_token(*r.credentials) == "second");
}

TEST_CASE("in-cluster credentials from env and the service-account directory", "[discovery]") {
  TempDir dir;
  dir.write("token", "sa-token\n");
  dir.write("ca.crt", "SA-CA");
  dir.write("namespace", "httpbin");
  auto env = env_of({{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}});
  auto r = in_cluster_credentials(env, dir.path.string());
  REQUIRE(r.credentials);
  CHECK(r.credentials->host == "10.96.0.1");
  CHECK(r.credentials->ca_pem == "SA-CA");
  CHECK(r.credentials->default_namespace == "httpbin");
  CHECK(current_token(*r.credentials) == "sa-token");
  dir.write("token", "rotated");
  CHECK(current_token(*r.credentials) == "rotated");

  auto missing = in_cluster_credentials(env, (dir.path / "nope").string());
  CHECK(missing.error.find("token") != std::string::npos);
}

TEST_CASE("credential lookup order", "[discovery]") {
  TempDir dir;
  std::string cfg = R"(current-context: c
clusters: [{name: k, cluster: {server: "https://HOST:1"}}]
contexts: [{name: c, context: {cluster: k}}]
)";
  auto write_cfg = [&](const std::string& name, const std::string& host) {
    std::string text = cfg;
    text.replace(text.find("HOST"), 4, host);
    return dir.write(name, text);
  };
  std::string explicit_path = write_cfg("explicit", "explicit.example");
  std::string env_path = write_cfg("envcfg", "env.example");
  fs::create_directories(dir.path / ".kube");
  write_cfg(".kube/config", "home.example");
  dir.write("token", "t");
  dir.write("ca.crt", "ca");

  KubeOptions o;
  o.in_cluster_dir = dir.path.string();
  o.env = env_of({{"KUBECONFIG", "/nonexistent:" + env_path}, {"HOME", dir.path.string()},
                  {"KUBERNETES_SERVICE_HOST", "10.0.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}});
  o.kubeconfig = explicit_path;
  CHECK(load_credentials(o).credentials->host == "explicit.example");
  o.kubeconfig.clear();
  CHECK(load_credentials(o).credentials->host == "10.0.0.1");
  o.env = env_of({{"KUBECONFIG", "/nonexistent:" + env_path}, {"HOME", dir.path.string()}});
  CHECK(load_credentials(o).credentials->host == "env.example");
  o.env = env_of({{"HOME", dir.path.string()}});
  CHECK(load_credentials(o).credentials->host == "home.example");
  o.env = env_of({{"HOME", (dir.path / "nothing").string()}});
  auto none = load_credentials(o);
  CHECK_FALSE(none.credentials);
  CHECK(none.error.find("no Kubernetes credentials") != std::string::npos);
  o.kubeconfig = (dir.path / "missing").string();
  CHECK(load_credentials(o).error.find("cannot read") != std::string::npos);
}

TEST_CASE("base64 decoding", "[discovery]") {
  CHECK(decode_base64("aGVsbG8=") == std::optional<std::string>("hello"));
  CHECK(decode_base64("aGVs\nbG8h") == std::optional<std::string>("hello!"));
  CHECK(decode_base64("") == std::optional<std::string>(""));
  CHECK_FALSE(decode_base64("a$b="));
  CHECK_FALSE(decode_base64("aG=VsbG8"));
}
