#include "config/errors.hpp"

namespace sluice::config {

namespace {

// True when PATH is ANCESTOR or lies below it: "a" covers "a", "a.b", "a[0]"; "" covers all.
bool covers(std::string_view ancestor, std::string_view path) {
  if (path.substr(0, ancestor.size()) != ancestor) return false;
  return ancestor.empty() || path.size() == ancestor.size() || path[ancestor.size()] == '.' ||
         path[ancestor.size()] == '[';
}

}  // namespace

void Errors::add(std::string_view path, std::string_view problem) {
  for (const auto& p : paths_) {
    if (covers(p, path)) return;
  }
  std::string message;
  if (path.empty()) {
    message = problem;
  } else {
    message.reserve(path.size() + 2 + problem.size());
    message.append(path).append(": ").append(problem);
  }
  list_.push_back(std::move(message));
  paths_.emplace_back(path);
}

std::string join_path(std::string_view parent, std::string_view key) {
  std::string path(parent);
  if (!path.empty()) path += '.';
  path += key;
  return path;
}

std::string index_path(std::string_view parent, std::size_t index) {
  std::string path(parent);
  path += '[';
  path += std::to_string(index);
  path += ']';
  return path;
}

}  // namespace sluice::config
