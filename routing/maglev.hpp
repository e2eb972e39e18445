// Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted as in Envoy's maglev_lb: a lookup
// table of M slots (M prime) where each candidate owns a share of slots proportional to its weight.
// When a candidate leaves, only its slots change owner (plus a small fraction, ~1/M each), so few keys
// move. M is the smallest prime of a fixed list that is >= 100 * candidates (balance within ~1%).
#pragma once

#include <cstdint>
#include <vector>

#include "routing/plugins.hpp"

namespace sluice::routing {

// Kept as the tier's LbTierState by the Hashing policy: built on the first hashed pick after the tier's
// candidates change.
class MaglevTable final : public LbTierState {
 public:
  // `tier` not empty; the candidates' identity tokens place them in the table.
  explicit MaglevTable(const LbTier& tier);

  std::uint32_t size() const { return static_cast<std::uint32_t>(table_.size()); }
  // Candidate index owning slot `slot % size()`.
  std::uint32_t at(std::uint64_t slot) const { return table_[slot % table_.size()]; }

  static std::uint32_t table_size_for(std::size_t candidates);

 private:
  std::vector<std::uint32_t> table_;
};

}  // namespace sluice::routing
