#include "proxy/head_scanner.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::proxy {

HeadScan HeadScanner::scan(std::string_view buffered) {
  // Line by line: memchr finds each LF (glibc's is vectorised), so the bytes between line ends are not
  // looked at one by one. Only bytes below max_bytes_ are scanned, as a byte-by-byte walk that stops at the
  // limit would.
  const std::size_t end = std::min(buffered.size(), max_bytes_);
  while (pos_ < end) {
    if (pos_ == line_start_ && lines_ > 0 && (buffered[pos_] == ' ' || buffered[pos_] == '\t')) {
      return HeadScan::obs_fold;
    }
    const void* lf = std::memchr(buffered.data() + pos_, '\n', end - pos_);
    if (!lf) {
      pos_ = end;
      break;
    }
    pos_ = static_cast<std::size_t>(static_cast<const char*>(lf) - buffered.data());
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
    ++pos_;
  }
  return buffered.size() >= max_bytes_ ? HeadScan::too_large : HeadScan::need_more;
}

}  // namespace sluice::proxy
