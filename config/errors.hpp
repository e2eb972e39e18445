// A list of configuration problems, each "path: problem".
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::config {

// Collects errors in the order found, at most one per path: a later error at
// a path that already has one, or below it ("services[0]" then
// "services[0].name"), is dropped, so one mistake does not cascade into
// several messages (a port the reader rejected is not reported again as 0).
class Errors {
 public:
  // PATH is the JSON path ("listeners[1].port"); empty PATH: the whole document.
  void add(std::string_view path, std::string_view problem);

  bool empty() const { return list_.empty(); }
  std::size_t size() const { return list_.size(); }
  const std::vector<std::string>& list() const { return list_; }
  std::vector<std::string> take() {
    paths_.clear();
    return std::move(list_);
  }

 private:
  std::vector<std::string> list_;
  std::vector<std::string> paths_;  // paths_[i] is list_[i]'s path
};

// "a" + "b" -> "a.b"; "" + "b" -> "b".
std::string join_path(std::string_view parent, std::string_view key);
// "a", 2 -> "a[2]".
std::string index_path(std::string_view parent, std::size_t index);

}  // namespace sluice::config
