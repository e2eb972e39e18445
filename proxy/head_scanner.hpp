// Scans the raw bytes of a request head as they arrive, before Beast's parser
// sees them. Beast accepts obs-fold (it unfolds it) and has no limit on the
// number of header fields; a proxy must reject the first (request smuggling,
// RFC 9112 5.2) and cap the second (Envoy max_headers_count). A bare LF line
// ending is rejected too, since front and back ends may disagree on it.
#pragma once

#include <cstddef>
#include <string_view>

namespace sluice::proxy {

enum class HeadScan { need_more, complete, bare_lf, obs_fold, empty_first_line, too_large, too_many_headers };

class HeadScanner {
 public:
  HeadScanner(std::size_t max_bytes, std::size_t max_headers)
      : max_bytes_(max_bytes), max_headers_(max_headers) {}

  // Scans `buffered` (all bytes received so far for this head; it only grows between calls).
  // On complete, head_size() is the length of the head including the final CRLF CRLF.
  HeadScan scan(std::string_view buffered);

  std::size_t head_size() const { return head_size_; }

 private:
  std::size_t max_bytes_;
  std::size_t max_headers_;
  std::size_t pos_ = 0;         // next byte to look at
  std::size_t line_start_ = 0;  // offset of the current line
  std::size_t lines_ = 0;       // complete lines so far (request line included)
  std::size_t head_size_ = 0;
};

}  // namespace sluice::proxy
