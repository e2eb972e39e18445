// The types HTTP/1.1 message heads from outside are parsed into: Beast's parser and fields with the
// recycling allocator (proxy/recycler.hpp), so a parsed head's fields, request target and reason phrase
// reuse the blocks of the previous head instead of costing a malloc each (about six per proxied request).
#pragma once

#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/fields.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>

#include "proxy/recycler.hpp"

namespace sluice::proxy {

using head_allocator = RecyclingAllocator<char>;
using head_fields = boost::beast::http::basic_fields<head_allocator>;
using request_head_parser = boost::beast::http::request_parser<boost::beast::http::buffer_body, head_allocator>;
using response_head_parser = boost::beast::http::response_parser<boost::beast::http::buffer_body, head_allocator>;
using request_head = boost::beast::http::request<boost::beast::http::buffer_body, head_fields>;

}  // namespace sluice::proxy
