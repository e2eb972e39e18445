// Namespace aliases shared by the I/O code (proxy, discovery).
#pragma once

#include <boost/asio/ip/tcp.hpp>

namespace boost::asio {}
namespace boost::beast {}
namespace boost::beast::http {}
namespace boost::asio::ip {}
namespace boost::asio::ssl {}

namespace sluice {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
}  // namespace sluice
