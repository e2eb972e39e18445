// The access log: one JSON object per request, one line, to stdout or a file.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace sluice::proxy {

// What one request did; filled in as it goes and written when it ends. The views point into the routing
// snapshot the request holds and the worker's settings, both alive until the request ends.
struct RequestLog {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::string method;
  std::string authority;
  std::string path;
  std::string client;
  std::string_view service;
  std::string upstream;          // "address:port" of the last attempt, empty when none
  std::string_view src_cluster;  // this cluster
  std::string_view dst_cluster;  // cluster of the endpoint that answered
  unsigned tier = 0;
  unsigned attempts = 0;
  unsigned status = 0;
  std::uint64_t bytes_received = 0;  // request body
  std::uint64_t bytes_sent = 0;      // response body
  std::string error;                  // proxy-side cause, when the proxy answered
  // An upgraded connection (101): bytes_received/bytes_sent count the tunnel's bytes each way, and this
  // says who ended it ("client", "upstream", "idle", "lifetime", "proxy"); empty for plain requests.
  std::string_view tunnel_closed_by;

  // A fresh entry starting now, keeping the strings' capacity (a connection reuses one entry).
  void reset() {
    start = std::chrono::steady_clock::now();
    for (auto* s : {&method, &authority, &path, &client, &upstream, &error}) s->clear();
    service = src_cluster = dst_cluster = tunnel_closed_by = {};
    tier = attempts = status = 0;
    bytes_received = bytes_sent = 0;
  }
};

class AccessLog {
 public:
  // `path` empty or "-": stdout. Returns false (and sets error) when the file cannot be opened.
  bool open(const std::string& path, std::string& error);
  ~AccessLog();

  // Writes one line with a single write(2). Any thread.
  void write(const RequestLog& entry) const;

 private:
  int fd_ = 1;
  bool owned_ = false;
};

}  // namespace sluice::proxy
