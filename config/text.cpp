#include "config/text.hpp"

#include <arpa/inet.h>

#include <cctype>
#include <vector>

namespace sluice::config {

namespace {

// The first spelling of `value` in `names`; the table's first one if the value had none.
template <class E, std::size_t N>
constexpr std::string_view canonical(const std::array<EnumName<E>, N>& names, E value) {
  for (const auto& n : names) {
    if (n.value == value) return n.name;
  }
  return names.front().name;
}

}  // namespace

std::string_view to_string(Role role) { return canonical(role_names, role); }
std::string_view to_string(LoadBalancer lb) { return canonical(load_balancer_names, lb); }
std::string_view to_string(HashOn on) { return canonical(hash_on_names, on); }
std::string_view to_string(UpstreamProtocol p) { return canonical(upstream_protocol_names, p); }
std::string_view to_string(LbType type) { return canonical(lb_type_names, type); }
std::string_view to_string(PathMatch match) { return canonical(path_match_names, match); }

std::string format_duration(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms == 0) return "0";
  std::string out;
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  // Whole units only, so the text parses back to exactly D.
  if (ms % 1000 != 0) return out + std::to_string(ms) + "ms";
  auto s = ms / 1000;
  const auto h = s / 3600;
  const auto m = s % 3600 / 60;
  s %= 60;
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (s) out += std::to_string(s) + "s";
  return out;
}

std::optional<ClusterIdentity> parse_cluster_key(std::string_view key) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto slash = key.find('/', start);
    parts.emplace_back(key.substr(start, slash == std::string_view::npos ? key.npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() != 4) return std::nullopt;
  for (const auto& p : parts) {
    if (p.empty()) return std::nullopt;
    for (const char c : p) {
      if (std::isspace(static_cast<unsigned char>(c)) || std::iscntrl(static_cast<unsigned char>(c))) {
        return std::nullopt;
      }
    }
  }
  return ClusterIdentity{parts[0], parts[1], parts[2], parts[3]};
}

bool is_name_part(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (const char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  }
  return true;
}

bool is_ip_literal(std::string_view a) {
  const std::string text(a);  // inet_pton wants a terminated string
  in_addr v4{};
  in6_addr v6{};
  return inet_pton(AF_INET, text.c_str(), &v4) == 1 || inet_pton(AF_INET6, text.c_str(), &v6) == 1;
}

bool is_host_name(std::string_view h) {
  if (h.empty() || h.size() > 253 || h.front() == '.' || h.back() == '.') return false;
  char previous = '.';
  for (const char c : h) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    if (!ok || (c == '.' && previous == '.')) return false;
    previous = c;
  }
  return true;
}

}  // namespace sluice::config
