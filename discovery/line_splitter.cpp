#include "discovery/line_splitter.hpp"

namespace sluice::discovery {
namespace {

void emit(std::string_view line, const std::function<void(std::string_view)>& on_line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (!line.empty()) on_line(line);
}

}  // namespace

bool LineSplitter::feed(std::string_view chunk, const std::function<void(std::string_view)>& on_line) {
  while (!chunk.empty()) {
    auto nl = chunk.find('\n');
    if (nl == std::string_view::npos) {
      if (partial_.size() + chunk.size() > max_line_) return false;
      partial_.append(chunk);
      return true;
    }
    if (partial_.empty()) {
      // Common case: the whole line is inside this chunk; no copy.
      emit(chunk.substr(0, nl), on_line);
    } else {
      if (partial_.size() + nl > max_line_) return false;
      partial_.append(chunk.substr(0, nl));
      std::string line = std::move(partial_);
      partial_.clear();
      emit(line, on_line);
    }
    chunk.remove_prefix(nl + 1);
  }
  return true;
}

}  // namespace sluice::discovery
