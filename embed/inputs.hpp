// The routing inputs of a sluice::Proxy — the config's model (or Proxy::publish's) and each discovery
// source's latest — and their union, published into the routing table.
#pragma once

#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "routing/model.hpp"

namespace sluice::routing { class Publisher; }

namespace sluice {

class RoutingInputs {
 public:
  // `publisher` must outlive this.
  explicit RoutingInputs(routing::Publisher& publisher) : publisher_(publisher) {}

  // Replaces input `input`'s model and publishes the union (see combine()): input 0 is the config's
  // (`is_config`) or Proxy::publish's, input 1 + i is source i's. Once a publish() has replaced it, the
  // config's model is no longer published; nor while the base owner (below) carries it. Returns the
  // model's unregistered plugins (published anyway: those services use the built-in policies). Any thread.
  std::vector<std::string> publish(std::size_t input, routing::Model model, bool is_config = false);

  // Input `input` (a source, >= 1) merges the config's routing under its own (the built-in "kubernetes"
  // does): once it has published, input 0 holds nothing while it is the config's, so no route or service
  // is published twice. Before that source starts. Any thread.
  void set_base_owner(std::size_t input);

 private:
  routing::Publisher& publisher_;
  std::mutex mutex_;  // one build and publication at a time
  std::vector<std::optional<routing::Model>> models_;
  bool input0_is_config_ = true;
  std::size_t base_owner_ = 0;  // 0: none
};

// The union of the inputs' models: routes in input order; a service defined by several inputs is taken
// from the last one; `local` is the first input's; stale if any is; sources joined with '+'.
routing::Model combine(const std::vector<std::optional<routing::Model>>& models);

}  // namespace sluice
