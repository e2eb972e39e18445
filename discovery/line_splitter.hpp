// Splits a byte stream (a watch response body, arriving in arbitrary chunks) into newline-terminated
// lines: the watch protocol's one JSON event per line.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace sluice::discovery {

class LineSplitter {
 public:
  // A single event larger than this is a broken stream (the API server's own limit is ~3 MiB per object).
  static constexpr std::size_t default_max_line = 64 * 1024 * 1024;

  explicit LineSplitter(std::size_t max_line = default_max_line) : max_line_(max_line) {}

  // Appends `chunk` and calls `on_line` for every complete line (without its '\n' or a trailing '\r';
  // empty lines are skipped). Returns false when a line exceeds max_line (the caller drops the stream).
  bool feed(std::string_view chunk, const std::function<void(std::string_view line)>& on_line);

  // Bytes buffered of an incomplete line.
  std::size_t pending() const { return partial_.size(); }
  void reset() { partial_.clear(); }

 private:
  std::string partial_;
  std::size_t max_line_;
};

}  // namespace sluice::discovery
