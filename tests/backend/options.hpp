// Command-line options of sluice-testbackend, the HTTP/1.1 server that the
// integration tests and the benchmark put behind the proxy.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace sluice::testbackend {

// One `--listen ADDR:PORT`; port 0 asks the kernel for a free port.
struct Listen_address {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
};

struct Options {
  std::vector<Listen_address> listen;    // empty after parsing means 127.0.0.1:0
  std::string name = "backend";          // answered as `NAME\n` and in X-Backend
  unsigned threads = 1;                  // io_context threads
  unsigned status_all = 0;               // 0: normal; else every request answers this status
  std::string port_file;                 // bound ports, one per line, written once listening
  std::chrono::milliseconds idle_timeout{0};  // 0: keep idle connections forever
  bool help = false;
};

// Parses argv. Returns an empty string on success, else a one-line error.
// Accepts `--flag value` and `--flag=value`.
std::string parse_options(int argc, char** argv, Options& out);

// Parses "host:port", "[v6]:port" or ":port". Returns false when malformed.
bool parse_listen_address(const std::string& text, Listen_address& out);

extern const char* const usage_text;

}  // namespace sluice::testbackend
