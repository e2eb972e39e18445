#include "proxy/head_scanner.hpp"

namespace sluice::proxy {

HeadScan HeadScanner::scan(std::string_view buffered) {
  for (; pos_ < buffered.size(); ++pos_) {
    if (pos_ >= max_bytes_) return HeadScan::too_large;
    const char c = buffered[pos_];
    if (pos_ == line_start_ && lines_ > 0 && (c == ' ' || c == '\t')) return HeadScan::obs_fold;
    if (c != '\n') continue;
    if (pos_ == 0 || buffered[pos_ - 1] != '\r') return HeadScan::bare_lf;
    const bool empty_line = pos_ - line_start_ == 1;
    line_start_ = pos_ + 1;
    if (empty_line) {
      if (lines_ == 0) return HeadScan::empty_first_line;
      head_size_ = pos_ + 1;
      ++pos_;
      return HeadScan::complete;
    }
    if (++lines_ > max_headers_ + 1) return HeadScan::too_many_headers;
  }
  return buffered.size() >= max_bytes_ ? HeadScan::too_large : HeadScan::need_more;
}

}  // namespace sluice::proxy
