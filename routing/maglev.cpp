#include "routing/maglev.hpp"

#include <algorithm>
#include <memory>

#include "routing/balancers.hpp"
#include "routing/snapshot.hpp"
#include "routing/view.hpp"

namespace sluice::routing {
namespace {

constexpr std::uint32_t kPrimes[] = {211, 419, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071};
constexpr std::uint32_t kEmpty = 0xffffffffu;

}  // namespace

std::uint32_t MaglevTable::table_size_for(std::size_t candidates) {
  for (std::uint32_t p : kPrimes) {
    if (p >= 100 * candidates) return p;
  }
  return kPrimes[std::size(kPrimes) - 1];
}

MaglevTable::MaglevTable(std::span<const Candidate> cands, const ServiceEntry& svc) {
  const std::uint32_t m = table_size_for(cands.size());
  table_.assign(m, kEmpty);
  struct Entry {
    std::uint64_t offset, skip, next = 0;
    double weight, target = 0;
  };
  std::vector<Entry> entries;
  entries.reserve(cands.size());
  double max_weight = 0;
  for (const auto& c : cands) max_weight = std::max(max_weight, c.weight);
  for (const auto& c : cands) {
    const std::uint64_t token = svc.endpoints[c.endpoint].token;
    entries.push_back(Entry{mix64(token) % m, mix64(token ^ 0x5bd1e995u) % (m - 1) + 1, 0,
                            c.weight / max_weight, 0});
  }
  // Envoy's weighted fill: a candidate of weight w/max fills one slot every max/w rounds.
  std::uint32_t filled = 0;
  for (std::uint64_t round = 1; filled < m; ++round) {
    for (std::size_t i = 0; i < entries.size() && filled < m; ++i) {
      Entry& e = entries[i];
      if (static_cast<double>(round) * e.weight < e.target) continue;
      e.target += 1.0;
      std::uint64_t slot = (e.offset + e.skip * e.next) % m;
      while (table_[slot] != kEmpty) {
        ++e.next;
        slot = (e.offset + e.skip * e.next) % m;
      }
      table_[slot] = static_cast<std::uint32_t>(i);
      ++e.next;
      ++filled;
    }
  }
}

int pick_hashed(TierView& tier, const ServiceEntry& svc, std::uint64_t key, const Exclusion* ex) {
  if (tier.candidates.empty()) return -1;
  if (!tier.maglev) tier.maglev = std::make_shared<MaglevTable>(tier.candidates, svc);
  const MaglevTable& table = *tier.maglev;
  const std::uint64_t slot = mix64(key);
  if (!ex) return static_cast<int>(table.at(slot));
  // Probe the following slots: the first allowed owner is stable for a key, like a ring's next node.
  for (std::uint32_t i = 0; i < table.size(); ++i) {
    const std::uint32_t k = table.at(slot + i);
    if (!ex->excludes(tier.candidates[k])) return static_cast<int>(k);
  }
  return -1;
}

}  // namespace sluice::routing
