// Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted as in Envoy's maglev_lb: a lookup
// table of M slots (M prime) where each candidate owns a share of slots proportional to its weight.
// When a candidate leaves, only its slots change owner (plus a small fraction, ~1/M each), so few keys
// move. M is the smallest prime of a fixed list that is >= 100 * candidates (balance within ~1%).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace sluice::routing {

struct Candidate;
struct ServiceEntry;

class MaglevTable {
 public:
  // `cands` not empty; endpoint tokens (stable identity hashes) place candidates in the table.
  MaglevTable(std::span<const Candidate> cands, const ServiceEntry& svc);

  std::uint32_t size() const { return static_cast<std::uint32_t>(table_.size()); }
  // Candidate index owning slot `slot % size()`.
  std::uint32_t at(std::uint64_t slot) const { return table_[slot % table_.size()]; }

  static std::uint32_t table_size_for(std::size_t candidates);

 private:
  std::vector<std::uint32_t> table_;
};

}  // namespace sluice::routing
