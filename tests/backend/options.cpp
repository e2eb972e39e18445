#include "tests/backend/options.hpp"

#include <charconv>
#include <string_view>

namespace sluice::testbackend {

const char* const usage_text =
    "usage: sluice-testbackend [--listen ADDR:PORT]... [--name NAME] [--threads N]\n"
    "                          [--status-all CODE] [--port-file PATH] [--idle-timeout-ms MS]\n"
    "Serves HTTP/1.1 keep-alive on every --listen address (default 127.0.0.1:0).\n"
    "Paths: / (NAME), /echo, /bytes/N, /chunked/N, /sink, /status/CODE, /delay/MS,\n"
    "       /headers, /close, /reset, /drop, /conn, /admin/status/CODE (0 = normal).\n";

namespace {

template <typename Int>
bool parse_uint(std::string_view text, Int& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

}  // namespace

bool parse_listen_address(const std::string& text, Listen_address& out) {
  std::string_view view = text;
  const auto colon = view.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = view.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  if (!parse_uint(view.substr(colon + 1), port) || port > 65535) return false;
  out.host = host.empty() ? "127.0.0.1" : std::string(host);
  out.port = static_cast<std::uint16_t>(port);
  return true;
}

std::string parse_options(int argc, char** argv, Options& out) {
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    bool has_value = false;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag.resize(eq);
      has_value = true;
    }
    if (flag == "--help" || flag == "-h") {
      out.help = true;
      continue;
    }
    if (!has_value) {
      if (i + 1 >= argc) return flag + ": missing value";
      value = argv[++i];
    }
    if (flag == "--listen") {
      Listen_address address;
      if (!parse_listen_address(value, address)) return "--listen: expected ADDR:PORT, got " + value;
      out.listen.push_back(address);
    } else if (flag == "--name") {
      out.name = value;
    } else if (flag == "--threads") {
      if (!parse_uint(value, out.threads) || out.threads == 0 || out.threads > 256) {
        return "--threads: expected 1..256, got " + value;
      }
    } else if (flag == "--status-all") {
      if (!parse_uint(value, out.status_all) || (out.status_all != 0 &&
                                                 (out.status_all < 200 || out.status_all > 599))) {
        return "--status-all: expected 0 or 200..599, got " + value;
      }
    } else if (flag == "--port-file") {
      out.port_file = value;
    } else if (flag == "--idle-timeout-ms") {
      unsigned ms = 0;
      if (!parse_uint(value, ms)) return "--idle-timeout-ms: expected a number, got " + value;
      out.idle_timeout = std::chrono::milliseconds(ms);
    } else {
      return "unknown flag " + flag;
    }
  }
  if (out.listen.empty()) out.listen.push_back(Listen_address{});
  return {};
}

}  // namespace sluice::testbackend
