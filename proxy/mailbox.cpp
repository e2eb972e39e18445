#include "proxy/mailbox.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <system_error>

namespace sluice::proxy {

namespace {

int make_eventfd() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
  return fd;
}

}  // namespace

Mailbox::Mailbox(boost::asio::io_context& ioc) : wake_(ioc, make_eventfd()) { read(); }

void Mailbox::send(std::function<void()> work) {
  {
    std::lock_guard lock(mutex_);
    queued_.push_back(std::move(work));
  }
  // The counter only wakes the loop; the queue is what is delivered, so lost or merged wakes are harmless.
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(wake_.native_handle(), &one, sizeof one);
}

void Mailbox::read() {
  wake_.async_read_some(boost::asio::buffer(&wakes_, sizeof wakes_), [this](boost::system::error_code ec, std::size_t) {
    if (ec) return;  // closed with the worker; an eventfd read fails no other way
    deliver();
    read();
  });
}

void Mailbox::deliver() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(queued_);
  }
  for (auto& w : work) w();
}

}  // namespace sluice::proxy
