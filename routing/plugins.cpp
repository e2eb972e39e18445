#include "routing/plugins.hpp"

#include <map>
#include <mutex>

namespace sluice::routing {
namespace {

// Registrations are rare (program start) and lookups happen when a snapshot is built, never on a pick:
// one mutex is enough.
struct Plugins {
  std::mutex mutex;
  std::map<std::string, std::shared_ptr<const LbPlugin>, std::less<>> load_balancers;
  std::map<std::string, std::shared_ptr<const MultiClusterPolicy>, std::less<>> multi_cluster;
};

Plugins& plugins() {
  static Plugins p;
  return p;
}

}  // namespace

bool register_load_balancer(const std::string& name, LoadBalancingFactory factory) {
  if (name.empty() || !factory) return false;
  auto plugin = std::make_shared<LbPlugin>(LbPlugin{name, std::move(factory)});
  Plugins& p = plugins();
  std::lock_guard lock(p.mutex);
  p.load_balancers[name] = std::move(plugin);
  return true;
}

bool register_multi_cluster_policy(const std::string& name, std::shared_ptr<const MultiClusterPolicy> policy) {
  if (name.empty() || !policy) return false;
  Plugins& p = plugins();
  std::lock_guard lock(p.mutex);
  p.multi_cluster[name] = std::move(policy);
  return true;
}

bool unregister_load_balancer(const std::string& name) {
  Plugins& p = plugins();
  std::lock_guard lock(p.mutex);
  return p.load_balancers.erase(name) > 0;
}

bool unregister_multi_cluster_policy(const std::string& name) {
  Plugins& p = plugins();
  std::lock_guard lock(p.mutex);
  return p.multi_cluster.erase(name) > 0;
}

std::shared_ptr<const LbPlugin> find_load_balancer(std::string_view name) {
  Plugins& p = plugins();
  std::lock_guard lock(p.mutex);
  auto it = p.load_balancers.find(name);
  return it == p.load_balancers.end() ? nullptr : it->second;
}

std::shared_ptr<const MultiClusterPolicy> find_multi_cluster_policy(std::string_view name) {
  Plugins& p = plugins();
  std::lock_guard lock(p.mutex);
  auto it = p.multi_cluster.find(name);
  return it == p.multi_cluster.end() ? nullptr : it->second;
}

std::vector<std::string> missing_plugins(const std::vector<config::Service>& services) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < services.size(); ++i) {
    const config::Service& s = services[i];
    const std::string at = "services[" + std::to_string(i) + "]";
    if (!s.load_balancer_plugin.empty() && !find_load_balancer(s.load_balancer_plugin)) {
      out.push_back(at + ".load_balancer_plugin: no load-balancing plugin registered as \"" +
                    s.load_balancer_plugin + "\"");
    }
    if (!s.policy.plugin.empty() && !find_multi_cluster_policy(s.policy.plugin)) {
      out.push_back(at + ".policy.plugin: no multi-cluster plugin registered as \"" + s.policy.plugin + "\"");
    }
  }
  return out;
}

}  // namespace sluice::routing
