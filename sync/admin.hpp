// The admin endpoint of `sluice sync`, like the proxy's: GET /live (200 while the process runs),
// /ready (200 once the first full resync has run, 503 before), /stats (Prometheus text: reconciles,
// writes by verb, conflicts, members synced and reachable) and /explain?service=ns/name (the desired
// import per member and why, JSON). Plain HTTP/1.1 on the control thread, one request at a time
// per connection.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

namespace sluice::sync {

class Controller;

class Admin {
 public:
  // Listens on address:port (0: any free port, logged). nullptr and `error` set when it cannot bind.
  static std::unique_ptr<Admin> start(boost::asio::io_context& ioc, const std::string& address, unsigned short port,
                                      std::shared_ptr<Controller> controller, std::string& error);
  virtual ~Admin() = default;
  virtual void stop() = 0;
};

// The /stats text. Control thread.
std::string render_stats(const Controller& controller);

}  // namespace sluice::sync
