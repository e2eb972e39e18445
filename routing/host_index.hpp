// The snapshot's host map: lowercased route host -> its routes (best first), as one flat open-addressing
// table, so that a request's host costs a hash over a stack buffer and about two cache lines (its slot and
// its record: route ids and key side by side), with no std::string and no node to chase.
//
// Built once by build_snapshot (control thread), then only read (any thread).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "routing/huge_pages.hpp"

namespace sluice::routing {

class HostIndex {
 public:
  static constexpr std::uint32_t kNoService = ~0u;

  struct Routes {
    const std::uint32_t* ids = nullptr;  // indices into Snapshot::routes, best first
    std::uint32_t count = 0;             // 0: the host has no route
    std::uint32_t service = kNoService;  // the first route's service index (a prefetch hint), if any
  };
  struct Entry {
    std::string_view host;               // lowercased; must outlive build()
    std::uint32_t route = 0;
    std::uint32_t rank = 0;              // order among the host's routes: lower first
    std::uint32_t service = kNoService;  // the route's service index in the snapshot, if it has one
  };

  // Replaces the contents with `entries` (any order; a (host, route) pair listed twice counts once).
  void build(std::vector<Entry> entries);

  // The routes of `host` (already lowercased); `hash` must be hash(host).
  Routes find(std::string_view host, std::uint64_t hash) const;
  Routes find(std::string_view host) const { return find(host, hash(host)); }

  // Hosts up to this long are compared in their slot (no second cache line).
  static constexpr std::size_t kInlineKey = 40;

  // Number of distinct hosts.
  std::size_t size() const { return size_; }

  // Calls f(host, routes) for every host (admin output, tests). Order unspecified.
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.count != 0) f(key_of(s), Routes{records_.data() + s.record, s.count});
    }
  }

  // The hash find() expects: 8 bytes at a time (hosts are short; FNV's byte loop shows in the profile).
  static std::uint64_t hash(std::string_view s);

 private:
  // One cache line. A host of up to kInlineKey bytes with one route (every discovered service's name) is
  // matched from the slot alone; others read their record too.
  struct alignas(64) Slot {
    std::uint64_t hash = 0;
    std::uint32_t record = 0;     // records_[record, record + count) route ids, then the key's bytes
    std::uint16_t key_size = 0;
    std::uint16_t count = 0;      // 0: empty slot
    std::uint32_t first_route = 0;  // records_[record], kept here too
    std::uint32_t first_service = kNoService;  // its service index
    char key[kInlineKey] = {};    // the key's first bytes
  };
  std::string_view key_of(const Slot& s) const {
    return {reinterpret_cast<const char*>(records_.data() + s.record + s.count), s.key_size};
  }

  HugeVector<Slot> slots_;              // power-of-two size, at most ~2/3 full; huge pages
  std::vector<std::uint32_t> records_;  // route ids followed by the key, padded to 4 bytes
  std::size_t size_ = 0;
};

}  // namespace sluice::routing
