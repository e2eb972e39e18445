#include "routing/plugins.hpp"

#include <array>
#include <utility>

#include "config/text.hpp"
#include "routing/balancers.hpp"
#include "routing/named_registry.hpp"

namespace sluice::routing {
namespace {

NamedRegistry<std::shared_ptr<const LbPlugin>>& load_balancers() {
  static NamedRegistry<std::shared_ptr<const LbPlugin>> registry;
  return registry;
}

NamedRegistry<std::shared_ptr<const MultiClusterPolicy>>& multi_cluster_policies() {
  static NamedRegistry<std::shared_ptr<const MultiClusterPolicy>> registry;
  return registry;
}

// ErieCanal's Locality (and no policy at all): the local cluster only.
class LocalityPolicy final : public MultiClusterPolicy {
 public:
  void place(const config::Service&, std::string_view, std::span<const ClusterInfo> clusters,
             std::span<ClusterPlacement> out) const override {
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      if (clusters[i].local) out[i] = ClusterPlacement{0, 0};
    }
  }
};

// ErieCanal's ActiveActive: the local cluster and the listed targets (every cluster when none is listed)
// share tier 0. Weights split traffic between clusters when any target has one; a cluster without one
// (the local cluster unless listed) gets the mean of those given: targets c1 weight 30 and c2 weight 10,
// local unlisted -> local 20, c1 30, c2 10, i.e. 33% / 50% / 17%.
class ActiveActivePolicy final : public MultiClusterPolicy {
 public:
  void place(const config::Service& service, std::string_view, std::span<const ClusterInfo> clusters,
             std::span<ClusterPlacement> out) const override {
    const auto& targets = service.policy.targets;
    double sum = 0;
    unsigned given = 0;
    for (const auto& t : targets) {
      if (t.weight) {
        sum += *t.weight;
        ++given;
      }
    }
    const double mean = given == 0 ? 0.0 : sum / given;
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      const ClusterInfo& c = clusters[i];
      bool listed = false;
      for (const auto& t : targets) {
        if (t.cluster == c.key) {
          out[i] = ClusterPlacement{0, t.weight ? double(*t.weight) : mean};
          listed = true;
          break;
        }
      }
      if (!listed && (c.local || targets.empty())) out[i] = ClusterPlacement{0, mean};
    }
  }
};

// ErieCanal's FailOver: the local cluster is tier 0, then each listed target its own tier in list order;
// with no targets listed every other cluster is the one backup tier.
class FailOverPolicy final : public MultiClusterPolicy {
 public:
  void place(const config::Service& service, std::string_view local, std::span<const ClusterInfo> clusters,
             std::span<ClusterPlacement> out) const override {
    const auto& targets = service.policy.targets;
    for (std::size_t i = 0; i < clusters.size(); ++i) {
      const ClusterInfo& c = clusters[i];
      if (c.local) {
        out[i] = ClusterPlacement{0, 0};
        continue;
      }
      if (targets.empty()) {
        out[i] = ClusterPlacement{1, 0};
        continue;
      }
      int tier = 1;
      for (const auto& t : targets) {
        if (t.cluster == local) continue;
        if (t.cluster == c.key) {
          out[i] = ClusterPlacement{tier, 0};
          break;
        }
        ++tier;
      }
    }
  }
};

using BuiltinPolicy = std::pair<std::string_view, std::shared_ptr<const MultiClusterPolicy>>;

// Named as the config spells lb_type (config::to_string), in LbType order.
const std::array<BuiltinPolicy, 3>& builtin_policies() {
  using config::LbType;
  static const std::array<BuiltinPolicy, 3> builtins{
      BuiltinPolicy{config::to_string(LbType::locality), std::make_shared<LocalityPolicy>()},
      BuiltinPolicy{config::to_string(LbType::active_active), std::make_shared<ActiveActivePolicy>()},
      BuiltinPolicy{config::to_string(LbType::fail_over), std::make_shared<FailOverPolicy>()}};
  return builtins;
}

// The built-in load balancers as registry entries under their canonical names (config::to_string):
// every worker and service shares the one instance.
std::shared_ptr<const LbPlugin> builtin_lb_plugin(config::LoadBalancer kind) {
  constexpr std::size_t kBuiltins = 4;  // config::LoadBalancer's values
  static const auto plugins = [] {
    std::array<std::shared_ptr<const LbPlugin>, kBuiltins> out;
    for (std::size_t i = 0; i < out.size(); ++i) {
      const auto lb = static_cast<config::LoadBalancer>(i);
      auto policy = builtin_policy(lb);
      out[i] = std::make_shared<LbPlugin>(
          LbPlugin{std::string(config::to_string(lb)), [policy](std::string_view) { return policy; }, true});
    }
    return out;
  }();
  return plugins.at(static_cast<std::size_t>(kind));
}

}  // namespace

bool register_load_balancer(const std::string& name, LoadBalancingFactory factory) {
  if (!factory) return false;
  return load_balancers().add(name, std::make_shared<LbPlugin>(LbPlugin{name, std::move(factory)}));
}

bool register_multi_cluster_policy(const std::string& name, std::shared_ptr<const MultiClusterPolicy> policy) {
  return multi_cluster_policies().add(name, std::move(policy));
}

bool unregister_load_balancer(const std::string& name) { return load_balancers().remove(name); }

bool unregister_multi_cluster_policy(const std::string& name) { return multi_cluster_policies().remove(name); }

std::shared_ptr<const LbPlugin> find_load_balancer(std::string_view name) {
  if (auto registered = load_balancers().find(name)) return registered;
  const std::optional<config::LoadBalancer> kind = builtin_load_balancer(name);
  if (!kind) return nullptr;
  // ErieCanal's spelling of a built-in that a program replaced under the canonical name.
  if (auto replaced = load_balancers().find(config::to_string(*kind))) return replaced;
  return builtin_lb_plugin(*kind);
}

std::shared_ptr<const LbPlugin> resolve_load_balancer(const config::Service& service) {
  if (!service.load_balancer_plugin.empty()) {
    if (auto found = find_load_balancer(service.load_balancer_plugin)) return found;
  }
  return find_load_balancer(config::to_string(service.load_balancer));
}

std::optional<config::LoadBalancer> builtin_load_balancer(std::string_view name) {
  return config::parse_enum(config::load_balancer_names, name);
}

std::shared_ptr<const MultiClusterPolicy> find_multi_cluster_policy(std::string_view name) {
  if (auto registered = multi_cluster_policies().find(name)) return registered;
  for (const auto& [n, policy] : builtin_policies()) {
    if (n == name) return policy;
  }
  return nullptr;
}

std::shared_ptr<const MultiClusterPolicy> resolve_multi_cluster_policy(const config::TrafficPolicy& policy) {
  if (!policy.plugin.empty()) {
    if (auto found = find_multi_cluster_policy(policy.plugin)) return found;
  }
  const auto& [type_name, builtin] = builtin_policies().at(static_cast<std::size_t>(policy.lb_type));
  if (auto found = find_multi_cluster_policy(type_name)) return found;  // a program's replacement, or builtin
  return builtin;
}

std::vector<std::string> missing_plugins(const std::vector<config::Service>& services) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < services.size(); ++i) {
    const config::Service& s = services[i];
    const std::string at = "services[" + std::to_string(i) + "]";
    const std::string& lb = s.load_balancer_plugin;
    if (!lb.empty() && !find_load_balancer(lb)) {
      out.push_back(at + ".load_balancer_plugin: no load-balancing plugin registered as \"" + lb + "\"");
    }
    if (!s.policy.plugin.empty() && !find_multi_cluster_policy(s.policy.plugin)) {
      out.push_back(at + ".policy.plugin: no multi-cluster plugin registered as \"" + s.policy.plugin + "\"");
    }
  }
  return out;
}

}  // namespace sluice::routing
