// sluice-testbackend: a small, fast HTTP/1.1 keep-alive server for the
// integration tests and the benchmark. See tests/backend/README.md.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "net/net.hpp"
#include "tests/backend/options.hpp"
#include "tests/backend/session.hpp"

namespace sluice::testbackend {
namespace {

// Accepts on one address and hands each connection to the next io_context
// of the pool, round robin; a connection then lives on that one thread.
class Acceptor {
 public:
  Acceptor(net::io_context& ioc, std::vector<std::unique_ptr<net::io_context>>& pool,
           Shared& shared)
      : acceptor_(ioc), pool_(pool), shared_(shared) {}

  // Binds and listens. Returns an empty string or the error.
  std::string open(const Listen_address& address) {
    boost::system::error_code ec;
    const auto ip = net::ip::make_address(address.host, ec);
    if (ec) return "bad address " + address.host + ": " + ec.message();
    const tcp::endpoint endpoint(ip, address.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) return "listen on " + address.host + ":" + std::to_string(address.port) + ": " +
                   ec.message();
    return {};
  }

  tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

  void do_accept() {
    auto& target = *pool_[next_++ % pool_.size()];
    acceptor_.async_accept(target.get_executor(),
                           [this](boost::system::error_code ec, tcp::socket socket) {
                             if (ec == net::error::operation_aborted) return;
                             if (!ec) {
                               socket.set_option(tcp::no_delay(true), ec);
                               const auto id = ++shared_.accepted;
                               std::make_shared<Session>(std::move(socket), shared_, id)->run();
                             }
                             do_accept();
                           });
  }

 private:
  tcp::acceptor acceptor_;
  std::vector<std::unique_ptr<net::io_context>>& pool_;
  Shared& shared_;
  std::size_t next_ = 0;
};

std::string format_endpoint(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  std::string out;
  if (address.is_v6()) {
    out.append("[").append(address.to_string()).append("]");
  } else {
    out = address.to_string();
  }
  return out.append(":").append(std::to_string(endpoint.port()));
}

// Writes the bound ports, one per line, through a rename so that a test
// polling for the file never reads half of it.
bool write_port_file(const std::string& path, const std::vector<std::unique_ptr<Acceptor>>& all) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary);
    for (const auto& acceptor : all) out << acceptor->local_endpoint().port() << "\n";
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(temporary, path, ec);
  return !ec;
}

int run(const Options& options) {
  Shared shared;
  shared.name = options.name;
  shared.idle_timeout = options.idle_timeout;
  shared.status_override = options.status_all;

  // Concurrency hint 1: each io_context is run by exactly one thread.
  std::vector<std::unique_ptr<net::io_context>> pool;
  for (unsigned i = 0; i < options.threads; ++i) pool.push_back(std::make_unique<net::io_context>(1));
  auto& main_ioc = *pool.front();

  std::vector<std::unique_ptr<Acceptor>> acceptors;
  for (const auto& address : options.listen) {
    acceptors.push_back(std::make_unique<Acceptor>(main_ioc, pool, shared));
    if (const auto error = acceptors.back()->open(address); !error.empty()) {
      std::fprintf(stderr, "sluice-testbackend: %s\n", error.c_str());
      return 1;
    }
  }
  if (!options.port_file.empty() && !write_port_file(options.port_file, acceptors)) {
    std::fprintf(stderr, "sluice-testbackend: cannot write %s\n", options.port_file.c_str());
    return 1;
  }
  for (const auto& acceptor : acceptors) {
    std::printf("backend %s listening on %s\n", options.name.c_str(),
                format_endpoint(acceptor->local_endpoint()).c_str());
    acceptor->do_accept();
  }
  std::fflush(stdout);

  net::signal_set signals(main_ioc, SIGINT, SIGTERM);
  signals.async_wait([&pool](boost::system::error_code, int) {
    for (auto& ioc : pool) ioc->stop();
  });

  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < pool.size(); ++i) {
    threads.emplace_back([&ioc = *pool[i]] {
      auto guard = net::make_work_guard(ioc);
      ioc.run();
    });
  }
  main_ioc.run();
  for (auto& ioc : pool) ioc->stop();
  for (auto& thread : threads) thread.join();
  return 0;
}

}  // namespace
}  // namespace sluice::testbackend

int main(int argc, char** argv) {
  using namespace sluice::testbackend;
  Options options;
  if (const auto error = parse_options(argc, argv, options); !error.empty()) {
    std::fprintf(stderr, "sluice-testbackend: %s\n%s", error.c_str(), usage_text);
    return 2;
  }
  if (options.help) {
    std::fputs(usage_text, stdout);
    return 0;
  }
  return run(options);
}
