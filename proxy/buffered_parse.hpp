// Feeding a body parser the bytes a connection has already read, without going through the socket.
//
// Beast's async_read_some would do the same, but an asynchronous operation that completes at once is
// posted through the io_context (Asio 1.81 has no immediate completion), which costs a trip round the
// event loop. When a response's body arrived with its head, as small ones do, this skips that trip.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>

namespace sluice::proxy {

// Runs `parser` (an http::parser with a buffer_body pointed at free room) over `buffer`'s bytes, consuming
// what it used. Returns true when that settled the next step: an error in `ec`, or progress (body bytes
// or the end of the message). Returns false, `ec` clear, when the parser needs bytes from the socket.
template <class Parser>
bool parse_buffered(Parser& parser, boost::beast::flat_buffer& buffer, boost::system::error_code& ec) {
  ec = {};
  if (parser.is_done()) return true;
  if (buffer.size() == 0) return false;
  const auto& body = parser.get().body();
  const std::size_t room_before = body.size;
  const std::size_t used = parser.put(buffer.data(), ec);
  buffer.consume(used);
  if (ec == boost::beast::http::error::need_buffer || ec == boost::beast::http::error::need_more) ec = {};
  return ec || parser.is_done() || body.size != room_before;
}

}  // namespace sluice::proxy
