// kubeconfig path: YAML text -> discovery::Credentials (parse_kubeconfig), and the base64 decoder its
// *-data fields go through.
//
// Invariants: parse_kubeconfig never throws (yaml-cpp does; the parser must catch it) and gives either
// credentials or an error; credentials name a host and a numeric port and an https or http scheme; a
// client certificate comes with its key. Relative file names resolve in an empty directory, so only
// inline data is read.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "discovery/credentials.hpp"
#include "tests/fuzz/fuzz_check.hpp"

using namespace sluice::discovery;

namespace {
const std::string& empty_dir() {
  static const std::string dir = [] {
    char name[] = "/tmp/sluice-fuzz-kubeconfig-XXXXXX";
    const char* made = mkdtemp(name);
    return std::string(made ? made : "/nonexistent-sluice-fuzz");
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)decode_base64(text);

  const auto result = parse_kubeconfig(text, empty_dir(), "");
  if (!result.credentials) {
    FUZZ_CHECK(!result.error.empty(), "refused without an error");
    return 0;
  }
  const auto& c = *result.credentials;
  FUZZ_CHECK(!c.host.empty(), "no host");
  FUZZ_CHECK(!c.port.empty() && c.port.find_first_not_of("0123456789") == std::string::npos, "port not numeric");
  FUZZ_CHECK(c.scheme == "https" || c.scheme == "http", "scheme");
  FUZZ_CHECK(c.client_cert_pem.empty() == c.client_key_pem.empty(), "certificate without key");
  return 0;
}
