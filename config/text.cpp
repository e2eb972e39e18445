#include "config/text.hpp"

#include <cctype>
#include <vector>

namespace sluice::config {

std::string_view to_string(Role role) {
  switch (role) {
    case Role::standalone: return "standalone";
    case Role::sidecar: return "sidecar";
    case Role::gateway: return "gateway";
  }
  return "standalone";
}

std::string_view to_string(LoadBalancer lb) {
  switch (lb) {
    case LoadBalancer::round_robin: return "RoundRobin";
    case LoadBalancer::random: return "Random";
    case LoadBalancer::least_work: return "LeastWork";
    case LoadBalancer::hashing: return "Hashing";
  }
  return "RoundRobin";
}

std::string_view to_string(HashOn on) {
  switch (on) {
    case HashOn::client_address: return "client_address";
    case HashOn::header: return "header";
    case HashOn::cookie: return "cookie";
  }
  return "client_address";
}

std::string_view to_string(LbType type) {
  switch (type) {
    case LbType::locality: return "Locality";
    case LbType::active_active: return "ActiveActive";
    case LbType::fail_over: return "FailOver";
  }
  return "Locality";
}

std::string_view to_string(PathMatch match) {
  switch (match) {
    case PathMatch::prefix: return "prefix";
    case PathMatch::exact: return "exact";
  }
  return "prefix";
}

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

}  // namespace sluice::config
