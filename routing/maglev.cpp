#include "routing/maglev.hpp"

#include <algorithm>
#include <memory>

#include "routing/balancers.hpp"
#include "routing/hash.hpp"
#include "routing/snapshot.hpp"

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

MaglevTable::MaglevTable(const LbTier& tier) {
  const std::span<const LbCandidate> cands = tier.candidates();
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
  for (std::size_t k = 0; k < cands.size(); ++k) {
    const std::uint64_t token = tier.token(k);
    const LbCandidate& c = cands[k];
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

namespace {

class Hashing final : public LoadBalancingPolicy {
 public:
  int pick(const LbRequest& request, LbTier& tier) override {
    if (!request.hash_key) return pick_weighted_random(tier);
    auto* table = static_cast<MaglevTable*>(tier.state());
    if (!table) {
      auto made = std::make_unique<MaglevTable>(tier);
      table = made.get();
      tier.set_state(std::move(made));
    }
    const std::uint64_t slot = mix64(*request.hash_key);
    if (!tier.restricted()) return static_cast<int>(table->at(slot));
    // Probe the following slots: the first allowed owner is stable for a key, like a ring's next node.
    for (std::uint32_t i = 0; i < table->size(); ++i) {
      const std::uint32_t k = table->at(slot + i);
      if (tier.allowed(k)) return static_cast<int>(k);
    }
    return -1;
  }
};

}  // namespace

std::shared_ptr<LoadBalancingPolicy> hashing_policy() {
  static const auto policy = std::make_shared<Hashing>();
  return policy;
}

}  // namespace sluice::routing
