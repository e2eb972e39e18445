// A registry of plugins by name: the load-balancing and multi-cluster policies (plugins.cpp) and the
// discovery sources (embed/sources.cpp) follow the same rules through it.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::routing {

// Registrations are rare (program start) and lookups happen when a snapshot or a proxy is built, never
// on a pick: one mutex is enough. `T`: a std::function or a smart pointer (empty: nothing registered).
// Any thread.
template <class T>
class NamedRegistry {
 public:
  // Registers `value` as `name`, replacing an earlier registration. False, and nothing registered, for
  // an empty name or an empty value.
  bool add(const std::string& name, T value) {
    if (name.empty() || !value) return false;
    std::lock_guard lock(mutex_);
    entries_[name] = std::move(value);
    return true;
  }

  // Removes `name`'s registration; whether there was one.
  bool remove(const std::string& name) {
    std::lock_guard lock(mutex_);
    return entries_.erase(name) > 0;
  }

  // What is registered as `name`; empty when nothing is.
  T find(std::string_view name) const {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(name);
    return it == entries_.end() ? T{} : it->second;
  }

  // The registered names, sorted.
  std::vector<std::string> names() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    out.reserve(entries_.size());
    for (const auto& entry : entries_) out.push_back(entry.first);
    return out;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, T, std::less<>> entries_;
};

}  // namespace sluice::routing
