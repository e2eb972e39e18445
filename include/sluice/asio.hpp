// Serving on an io_context the program owns: the one entry point of the embedding API that needs Asio
// (sluice/sluice.hpp stays free of it).
//
//   boost::asio::io_context ioc;
//   auto proxy = sluice::Proxy::from_json(config, errors);
//   errors = sluice::start_on(*proxy, ioc);      // listeners bound, accepting on ioc
//   std::thread io([&] { ioc.run(); });          // the program's thread serves the requests
//   ...
//   proxy->stop();                               // while ioc still runs
//   ioc.stop(); io.join();
#pragma once

#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "sluice/sluice.hpp"

namespace sluice {

// Starts `proxy` as Proxy::start() does, except that one worker serving every listener runs on `ioc`
// instead of the config's worker threads ("workers" is ignored); the control thread (admin, health
// checks) and the sources stay the proxy's own. The program runs `ioc` (io_context::run(), on one thread
// at a time: the worker's state has no locks) and keeps running it until proxy.stop() (which ~Proxy
// calls) has returned: stop() closes the listeners and every connection on it (requests in flight are cut,
// as on the proxy's own threads: drain() and wait_drained() first to let them end) and waits there until
// their handlers have run, so call it from a thread that does not run `ioc`. `ioc` must outlive `proxy`:
// the worker's timers and sockets are ioc's (declare the io_context first, as above). Returns every error;
// on any error nothing runs. Once, instead of start().
std::vector<std::string> start_on(Proxy& proxy, boost::asio::io_context& ioc);

}  // namespace sluice
