// Body relaying for the HTTP harnesses: a piece framed as the proxy frames it (FramedPiece, the buffers
// write_framed sends), and Beast reading a chunked body back.
#pragma once

#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "proxy/forward_headers.hpp"

namespace sluice_fuzz {

// Appends to `out` what write_framed would send for `size` bytes at `data`.
inline void append_framed(std::string& out, const char* data, std::size_t size, bool chunked, bool last) {
  sluice::proxy::FramedPiece piece({}, data, size, chunked, last);
  for (const auto& b : piece.buffers()) out.append(static_cast<const char*>(b.data()), b.size());
}

// The body of a chunked message whose body bytes are `framed`; "<malformed>" when Beast refuses them.
inline std::string unchunk(const std::string& framed) {
  const std::string message = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + framed;
  boost::beast::http::response_parser<boost::beast::http::string_body> parser;
  parser.body_limit(boost::none);
  parser.eager(true);
  boost::system::error_code ec;
  parser.put(boost::asio::buffer(message), ec);
  if (ec || !parser.is_done()) return "<malformed>";
  return parser.get().body();
}

}  // namespace sluice_fuzz
