#include "routing/host_index.hpp"

#include <algorithm>
#include <cstring>

#include "routing/hash.hpp"

namespace sluice::routing {
namespace {

// Route hosts longer than this are not indexed by name (DNS names are at most 253 bytes, plus a port);
// the slot stores the size in 16 bits and the route count as well.
constexpr std::size_t kMaxKey = 0xffff;
constexpr std::size_t kMaxRoutes = 0xffff;

}  // namespace

std::uint64_t HostIndex::hash(std::string_view s) {
  constexpr std::uint64_t k = 0x9e3779b97f4a7c15ull;
  std::uint64_t h = s.size() * k;
  const char* p = s.data();
  std::size_t n = s.size();
  while (n >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * k;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w) * k;
  }
  return mix64(h);
}

void HostIndex::build(std::vector<Entry> entries) {
  slots_.clear();
  records_.clear();
  size_ = 0;
  struct Keyed {
    std::uint64_t hash;
    const Entry* entry;
  };
  std::vector<Keyed> keyed;
  keyed.reserve(entries.size());
  for (const Entry& e : entries) {
    if (e.host.size() <= kMaxKey) keyed.push_back({hash(e.host), &e});
  }
  // Grouped by host (hash first: cheap comparisons), then the host's routes by rank.
  std::sort(keyed.begin(), keyed.end(), [](const Keyed& a, const Keyed& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    if (a.entry->host != b.entry->host) return a.entry->host < b.entry->host;
    if (a.entry->rank != b.entry->rank) return a.entry->rank < b.entry->rank;
    return a.entry->route < b.entry->route;
  });
  std::size_t hosts = 0;
  for (std::size_t i = 0; i < keyed.size(); ++i) {
    if (i == 0 || keyed[i].hash != keyed[i - 1].hash || keyed[i].entry->host != keyed[i - 1].entry->host) ++hosts;
  }
  std::size_t capacity = 16;
  while (capacity * 2 < hosts * 3) capacity *= 2;
  slots_.assign(capacity, Slot{});
  records_.reserve(keyed.size() + hosts * 8);
  const std::size_t mask = capacity - 1;

  for (std::size_t i = 0; i < keyed.size();) {
    std::size_t j = i + 1;
    while (j < keyed.size() && keyed[j].hash == keyed[i].hash && keyed[j].entry->host == keyed[i].entry->host) ++j;
    const std::string_view host = keyed[i].entry->host;
    Slot slot;
    slot.hash = keyed[i].hash;
    slot.record = static_cast<std::uint32_t>(records_.size());
    slot.key_size = static_cast<std::uint16_t>(host.size());
    if (!host.empty()) std::memcpy(slot.key, host.data(), std::min(host.size(), kInlineKey));
    for (std::size_t k = i; k < j && slot.count < kMaxRoutes; ++k) {
      if (k > i && keyed[k].entry->route == keyed[k - 1].entry->route) continue;  // listed twice
      records_.push_back(keyed[k].entry->route);
      ++slot.count;
    }
    slot.first_route = records_[slot.record];
    slot.first_service = keyed[i].entry->service;  // the best-ranked route's (sorted by rank above)
    const std::size_t words = (host.size() + 3) / 4;
    const std::size_t at = records_.size();
    records_.resize(at + words, 0);
    if (!host.empty()) std::memcpy(records_.data() + at, host.data(), host.size());
    std::size_t p = slot.hash & mask;
    while (slots_[p].count != 0) p = (p + 1) & mask;
    slots_[p] = slot;
    ++size_;
    i = j;
  }
}

HostIndex::Routes HostIndex::find(std::string_view host, std::uint64_t h) const {
  if (slots_.empty()) return {};
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t p = h & mask;; p = (p + 1) & mask) {
    const Slot& s = slots_[p];
    if (s.count == 0) return {};
    if (s.hash != h || s.key_size != host.size()) continue;
    if (host.size() <= kInlineKey) {
      if (!equal_bytes(s.key, host.data(), host.size())) continue;
      // One route: its id is in the slot, nothing more to load.
      return s.count == 1 ? Routes{&s.first_route, 1, s.first_service}
                          : Routes{records_.data() + s.record, s.count, s.first_service};
    }
    if (equal_bytes(reinterpret_cast<const char*>(records_.data() + s.record + s.count), host.data(), host.size())) {
      return {records_.data() + s.record, s.count, s.first_service};
    }
  }
}

}  // namespace sluice::routing
