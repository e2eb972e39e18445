#include "proxy/access_log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

namespace sluice::proxy {

bool AccessLog::open(const std::string& path, std::string& error) {
  if (path.empty() || path == "-") return true;
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    error = "access_log.path: cannot open \"" + path + "\": " + std::strerror(errno);
    fd_ = 1;
    return false;
  }
  owned_ = true;
  return true;
}

AccessLog::~AccessLog() {
  if (owned_) ::close(fd_);
}

void AccessLog::write(const RequestLog& e) const {
  const auto now = std::chrono::system_clock::now();
  const auto duration =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - e.start).count();
  nlohmann::json line = {
      {"time", std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count()},
      {"method", e.method},
      {"authority", e.authority},
      {"path", e.path},
      {"status", e.status},
      {"bytes_received", e.bytes_received},
      {"bytes_sent", e.bytes_sent},
      {"duration_ms", static_cast<double>(static_cast<long long>(duration * 1000)) / 1000},
      {"client", e.client},
      {"service", e.service},
      {"upstream", e.upstream},
      {"src_cluster", e.src_cluster},
      {"dst_cluster", e.dst_cluster},
      {"tier", e.tier},
      {"attempts", e.attempts},
  };
  if (!e.error.empty()) line["error"] = e.error;
  if (!e.tunnel_closed_by.empty()) line["tunnel_closed_by"] = e.tunnel_closed_by;
  auto text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  text.push_back('\n');
  [[maybe_unused]] auto n = ::write(fd_, text.data(), text.size());
}

}  // namespace sluice::proxy
