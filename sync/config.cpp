#include "sync/config.hpp"

#include <fstream>
#include <set>
#include <sstream>

#include "config/json_reader.hpp"

namespace sluice::sync {
namespace {

using config::ObjectReader;
using config::required;

// A key part or name: what a Kubernetes name allows (lower-case alphanumerics, '-', '.'), and no '/'
// since the cluster key joins the parts with it.
bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.')) return false;
  return true;
}

void parse_member(ObjectReader& r, MemberConfig& m) {
  r.string("name", m.name, required);
  r.string("region", m.region);
  r.string("zone", m.zone);
  r.string("group", m.group);
  r.string("kubeconfig", m.kubeconfig);
  r.string("context", m.context);
  r.object("gateway", m, [](ObjectReader& g, MemberConfig& mm) {
    g.string("host", mm.gateway_host, required);
    g.integer("port", mm.gateway_port, 1, 65535);
    if (g.clean() && mm.gateway_host.empty()) g.error("host", "expected a host name or IP address, got \"\"");
  });
  if (!r.clean()) return;
  if (!r.take("gateway")) r.error("gateway", "required");
  for (auto [key, value] : {std::pair{"name", &m.name}, {"region", &m.region}, {"zone", &m.zone},
                            {"group", &m.group}}) {
    if (!valid_name(*value))
      r.error(key, "expected lower-case letters, digits, '-' or '.', got \"" + *value + "\"");
  }
}

}  // namespace

std::optional<Config> parse_config(std::string_view text, std::vector<std::string>& out) {
  config::Errors errors;
  Config c;
  auto doc = config::parse_json(text, errors);
  if (doc) {
    ObjectReader r(*doc, "", errors);
    r.objects("members", c.members, parse_member, required);
    r.duration("resync_interval", c.resync_interval);
    r.duration("member_ttl", c.member_ttl);
    r.duration("coalesce", c.coalesce);
    r.duration("initial_sync_timeout", c.initial_sync_timeout);
    r.object("admin", c, [](ObjectReader& a, Config& cc) {
      a.string("address", cc.admin_address);
      std::uint16_t port = 0;
      a.integer("port", port, 0, 65535, required);
      if (a.clean()) cc.admin_port = port;
    });
    r.string("log_level", c.log_level);
    r.boolean("mcs", c.mcs);
    if (const auto* le = r.take("leader_election")) {
      ObjectReader l(*le, "leader_election", errors);
      if (l.valid()) {
        LeaderElection& e = c.leader_election.emplace();
        l.string("kubeconfig", e.kubeconfig);
        l.string("context", e.context);
        l.string("namespace", e.name_space);
        l.string("name", e.name);
        l.string("identity", e.identity);
        l.duration("lease_duration", e.lease_duration);
        l.duration("renew_deadline", e.renew_deadline);
        l.duration("retry_period", e.retry_period);
        if (l.clean()) {
          if (!valid_name(e.name_space)) l.error("namespace", "expected a Kubernetes name, got \"" + e.name_space + "\"");
          if (!valid_name(e.name)) l.error("name", "expected a Kubernetes name, got \"" + e.name + "\"");
          if (e.retry_period.count() <= 0) l.error("retry_period", "expected a positive duration");
          // client-go's checks: the leader must give up (renew_deadline) before others may take over
          // (lease_duration), and retry more often than its deadline.
          else if (e.renew_deadline <= e.retry_period)
            l.error("renew_deadline", "expected more than retry_period");
          else if (e.lease_duration <= e.renew_deadline)
            l.error("lease_duration", "expected more than renew_deadline");
        }
      }
    }
    if (r.clean()) {
      if (c.members.empty()) r.error("members", "expected at least one member");
      if (c.resync_interval.count() <= 0) r.error("resync_interval", "expected a positive duration");
      if (c.member_ttl.count() <= 0) r.error("member_ttl", "expected a positive duration");
      if (c.leader_election && c.leader_election->kubeconfig.empty() && !c.members.empty()) {
        c.leader_election->kubeconfig = c.members.front().kubeconfig;
        c.leader_election->context = c.members.front().context;
      }
      std::set<std::string> names, keys;
      for (std::size_t i = 0; i < c.members.size(); ++i) {
        const auto path = config::index_path("members", i);
        if (!names.insert(c.members[i].name).second)
          errors.add(path + ".name", "duplicate member name \"" + c.members[i].name + "\"");
        else if (!keys.insert(c.members[i].key()).second)
          errors.add(path, "duplicate cluster key \"" + c.members[i].key() + "\"");
      }
    }
  }
  if (!errors.empty()) {
    out = errors.take();
    return std::nullopt;
  }
  return c;
}

std::optional<Config> load_config(const std::string& path, std::vector<std::string>& errors) {
  std::ifstream in(path);
  if (!in) {
    errors.push_back(path + ": cannot read the file");
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::vector<std::string> found;
  auto c = parse_config(text.str(), found);
  for (auto& e : found) errors.push_back(path + ": " + e);
  return c;
}

}  // namespace sluice::sync
