// Mailbox (proxy/mailbox.hpp): work sent from other threads runs on the thread that runs an io_context
// created without any locking (BOOST_ASIO_CONCURRENCY_HINT_UNSAFE, as the workers' are), in the order each
// sender sent it, while that loop is busy with its own handlers.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "proxy/mailbox.hpp"

using namespace sluice;

TEST_CASE("mailbox: work from other threads runs on the loop's thread, each sender's in order") {
  boost::asio::io_context ioc(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
  proxy::Mailbox mailbox(ioc);
  constexpr int kSenders = 4;
  constexpr int kEach = 2000;
  std::vector<std::vector<int>> seen(kSenders);  // loop thread only
  std::atomic<int> left{kSenders * kEach};
  std::atomic<bool> off_thread{false};
  std::thread::id loop_thread;

  // The loop keeps itself busy with its own posts (which take no lock) while the mail arrives.
  std::function<void()> spin = [&] {
    if (left.load() > 0) boost::asio::post(ioc, spin);
  };
  boost::asio::post(ioc, spin);
  std::thread loop([&] {
    loop_thread = std::this_thread::get_id();
    ioc.run();
  });
  std::vector<std::thread> senders;
  for (int s = 0; s < kSenders; ++s) {
    senders.emplace_back([&, s] {
      for (int i = 0; i < kEach; ++i) {
        mailbox.send([&, s, i] {
          if (std::this_thread::get_id() != loop_thread) off_thread = true;
          seen[s].push_back(i);
          if (--left == 0) ioc.stop();
        });
      }
    });
  }
  for (auto& t : senders) t.join();
  loop.join();

  CHECK_FALSE(off_thread.load());
  for (int s = 0; s < kSenders; ++s) {
    REQUIRE(seen[s].size() == static_cast<std::size_t>(kEach));
    for (int i = 0; i < kEach; ++i) CHECK(seen[s][i] == i);
  }
}

TEST_CASE("mailbox: a stop sent by mail ends run() on a loop with nothing else to do") {
  boost::asio::io_context ioc(BOOST_ASIO_CONCURRENCY_HINT_UNSAFE);
  proxy::Mailbox mailbox(ioc);  // its pending read keeps run() from returning on its own
  std::atomic<bool> ran{false};
  std::thread loop([&] {
    ioc.run();
    ran = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(ran.load());
  mailbox.send([&] { ioc.stop(); });
  loop.join();
  CHECK(ran.load());
}
