#include "log/logger.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

namespace sluice::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::info)};

constexpr std::string_view level_name(Level level) {
  switch (level) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
  }
  return "?";
}

}  // namespace

bool parse_level(std::string_view text, Level& out) {
  for (auto level : {Level::trace, Level::debug, Level::info, Level::warn, Level::error}) {
    if (text == level_name(level)) {
      out = level;
      return true;
    }
  }
  return false;
}

void set_level(Level level) { g_level.store(static_cast<int>(level), std::memory_order_relaxed); }

bool enabled(Level level) { return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed); }

void write(Level level, std::string_view message) {
  const auto now = std::chrono::system_clock::now();
  const auto secs = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[40];
  const auto n = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string line;
  line.reserve(message.size() + 48);
  line.append(stamp, n);
  char ms[8];
  std::snprintf(ms, sizeof ms, ".%03dZ ", static_cast<int>(millis));
  line.append(ms);
  line.append(level_name(level));
  line.push_back(' ');
  line.append(message);
  line.push_back('\n');
  // One write per line: lines from different threads never interleave.
  [[maybe_unused]] auto written = ::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace sluice::log
