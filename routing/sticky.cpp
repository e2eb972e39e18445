#include "routing/sticky.hpp"

#include <chrono>

namespace sluice::routing {

std::string_view cookie_value(std::string_view header, std::string_view name) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    while (pos < header.size() && (header[pos] == ' ' || header[pos] == ';' || header[pos] == '\t')) ++pos;
    const auto end = header.find(';', pos);
    const std::string_view pair = header.substr(pos, end == std::string_view::npos ? end : end - pos);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos) {
      std::string_view key = pair.substr(0, eq);
      while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
      if (key == name) {
        std::string_view value = pair.substr(eq + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
        if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
        return value;
      }
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return {};
}

std::optional<std::uint64_t> parse_token(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return std::nullopt;
    v = (v << 4) | static_cast<std::uint64_t>(d);
  }
  return v;
}

void format_sticky_cookie(const config::SessionSticky& sticky, std::uint64_t token, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.clear();
  out += sticky.cookie;
  out += '=';
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(token >> shift) & 0xf];
  out += "; Path=/; HttpOnly";
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(sticky.ttl).count();
  if (seconds > 0) {
    out += "; Max-Age=";
    out += std::to_string(seconds);
  }
}

}  // namespace sluice::routing
