// Text forms of configuration values: every spelling of the enums (one table per enum, read by the
// config parser, discovery and /routes alike), durations as written in the config, cluster keys.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace sluice::config {

// A spelling of an enumerator; several spellings may map to one value. `erie_canal`: the spelling of
// ErieCanal's resources (ServiceExport spec.loadBalancer and rules[].pathType, GlobalTrafficPolicy
// spec.lbType), the only ones discovery accepts there; the config accepts every spelling.
template <class E>
struct EnumName {
  std::string_view name;
  E value;
  bool erie_canal = false;
};

// The accepted spellings of each enum, in the order an error lists them ("expected one of ..."). The
// first spelling of a value is its canonical one: to_string's, shown by /routes, /explain and logs.
inline constexpr std::array role_names{EnumName<Role>{"standalone", Role::standalone},
                                       EnumName<Role>{"sidecar", Role::sidecar},
                                       EnumName<Role>{"gateway", Role::gateway}};

// ErieCanal's ServiceExport spells them "RoundRobinLoadBalancer" and so on (it has no Random).
inline constexpr std::array load_balancer_names{
    EnumName<LoadBalancer>{"RoundRobin", LoadBalancer::round_robin},
    EnumName<LoadBalancer>{"RoundRobinLoadBalancer", LoadBalancer::round_robin, true},
    EnumName<LoadBalancer>{"Random", LoadBalancer::random},
    EnumName<LoadBalancer>{"LeastWork", LoadBalancer::least_work},
    EnumName<LoadBalancer>{"LeastWorkLoadBalancer", LoadBalancer::least_work, true},
    EnumName<LoadBalancer>{"Hashing", LoadBalancer::hashing},
    EnumName<LoadBalancer>{"HashingLoadBalancer", LoadBalancer::hashing, true}};

inline constexpr std::array hash_on_names{EnumName<HashOn>{"client_address", HashOn::client_address},
                                          EnumName<HashOn>{"header", HashOn::header},
                                          EnumName<HashOn>{"cookie", HashOn::cookie}};

inline constexpr std::array upstream_protocol_names{
    EnumName<UpstreamProtocol>{"http1", UpstreamProtocol::http1}, EnumName<UpstreamProtocol>{"h2c", UpstreamProtocol::h2c},
    EnumName<UpstreamProtocol>{"h2", UpstreamProtocol::h2}, EnumName<UpstreamProtocol>{"auto", UpstreamProtocol::auto_alpn}};

// ErieCanal's GlobalTrafficPolicy lbType.
inline constexpr std::array lb_type_names{EnumName<LbType>{"Locality", LbType::locality, true},
                                          EnumName<LbType>{"ActiveActive", LbType::active_active, true},
                                          EnumName<LbType>{"FailOver", LbType::fail_over, true}};

// ServiceExport's pathType is "Prefix" | "Exact".
inline constexpr std::array path_match_names{EnumName<PathMatch>{"prefix", PathMatch::prefix},
                                             EnumName<PathMatch>{"exact", PathMatch::exact},
                                             EnumName<PathMatch>{"Prefix", PathMatch::prefix, true},
                                             EnumName<PathMatch>{"Exact", PathMatch::exact, true}};

// The value `name` spells in `names` (exactly, case included), or nullopt. `erie_canal_only`: only
// ErieCanal's spellings count. Any thread.
template <class E, std::size_t N>
constexpr std::optional<E> parse_enum(const std::array<EnumName<E>, N>& names, std::string_view name,
                                      bool erie_canal_only = false) {
  for (const auto& n : names) {
    if (n.name == name && (n.erie_canal || !erie_canal_only)) return n.value;
  }
  return std::nullopt;
}

// The canonical spelling ("standalone", "RoundRobin", "client_address", "ActiveActive", "prefix"): the
// first of the value's spellings in the tables above. Never empty.
std::string_view to_string(Role role);
std::string_view to_string(LoadBalancer lb);
std::string_view to_string(HashOn on);
std::string_view to_string(UpstreamProtocol p);
std::string_view to_string(LbType type);
std::string_view to_string(PathMatch match);

// The shortest exact form parse_duration reads back: "0", "250ms", "10s",
// "2m", "1h", "1h30m", "1500ms".
std::string format_duration(std::chrono::milliseconds d);

// "region/zone/group/name" with four non-empty parts -> the identity;
// nullopt otherwise (wrong part count, an empty part, white space).
std::optional<ClusterIdentity> parse_cluster_key(std::string_view key);

// A Kubernetes-style name part of a service id (a service's name or namespace): letters, digits, '-' and
// '_', 1..253 of them. No '.', which would make "a.b" + "c" and "a" + "b.c" the same id, and nothing that
// breaks a Host. validate_config and discovery's object parsers both hold names to it.
bool is_name_part(std::string_view s);

// An IPv4 or IPv6 literal (no brackets), as inet_pton reads it.
bool is_ip_literal(std::string_view a);

// Letters, digits, '-', '_' in non-empty dot-separated labels (lenient on '_' because docker-compose and
// /etc/hosts names use it). An endpoint's address is an IP literal or such a name (validate_config, and
// discovery when it reads addresses from Kubernetes objects).
bool is_host_name(std::string_view h);

}  // namespace sluice::config
