#include "cache/eviction_policy.h"

#include <algorithm>
#include <bit>

namespace granary::cache {
namespace {
std::uint64_t mix(std::uint64_t h, std::uint64_t seed) {
  // splitmix64 finaliser: spreads one 64-bit hash into independent-looking row indices.
  h += seed * 0x9e3779b97f4a7c15ull;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}
}  // namespace

FrequencySketch::FrequencySketch(std::size_t capacity)
    : counters_(std::bit_ceil(std::max<std::size_t>(16, capacity * 4))),
      mask_(counters_.size() - 1),
      samplePeriod_(std::max<std::size_t>(16, capacity * 10)) {}

std::size_t FrequencySketch::index(std::uint64_t hash, int row) const {
  // XOR a per-row constant before mixing: adding it (as before) made row r of key k the same cell as
  // row r-1 of key k+golden, so keys in arithmetic progression shared counters and looked 4x as hot.
  static constexpr std::uint64_t kRowSeed[4] = {0x8f1bbcdc5a827999ull, 0x6ed9eba1ca62c1d6ull,
                                                0xd76aa478e8c7b756ull, 0x242070dbc1bdceeeull};
  return static_cast<std::size_t>(mix(hash ^ kRowSeed[row], 0)) & mask_;
}

void FrequencySketch::increment(std::uint64_t hash) {
  bool added = false;
  for (int row = 0; row < 4; ++row) {
    auto& c = counters_[index(hash, row)];
    if (c < 15) {
      ++c;
      added = true;
    }
  }
  if (added && ++additions_ >= samplePeriod_) halve();
}

unsigned FrequencySketch::frequency(std::uint64_t hash) const {
  unsigned f = 15;
  for (int row = 0; row < 4; ++row) f = std::min<unsigned>(f, counters_[index(hash, row)]);
  return f;
}

void FrequencySketch::halve() {
  for (auto& c : counters_) c >>= 1;
  additions_ /= 2;
}

TinyLfuPolicy::TinyLfuPolicy(std::size_t capacity)
    : capacity_(std::max<std::size_t>(2, capacity)),
      windowCap_(std::max<std::size_t>(1, capacity_ / 100)),
      protectedCap_((capacity_ - windowCap_) * 8 / 10),
      sketch_(capacity_) {}

TinyLfuPolicy::List& TinyLfuPolicy::list(Segment s) {
  switch (s) {
    case Segment::Window: return window_;
    case Segment::Probation: return probation_;
    case Segment::Protected: break;
  }
  return protected_;
}

void TinyLfuPolicy::moveTo(std::uint64_t key, Place& p, Segment to) {
  list(p.segment).erase(p.it);
  auto& l = list(to);
  l.push_front(key);
  p = Place{to, l.begin()};
}

void TinyLfuPolicy::recordAccess(std::uint64_t key) { sketch_.increment(key); }

bool TinyLfuPolicy::touch(std::uint64_t key) {
  auto it = where_.find(key);
  if (it == where_.end()) return false;
  Place& p = it->second;
  if (p.segment == Segment::Probation) {
    moveTo(key, p, Segment::Protected);
    if (protected_.size() > protectedCap_) {  // demote the protected segment's oldest
      std::uint64_t demoted = protected_.back();
      moveTo(demoted, where_.at(demoted), Segment::Probation);
    }
  } else {
    moveTo(key, p, p.segment);
  }
  return true;
}

void TinyLfuPolicy::insert(std::uint64_t key, std::vector<std::uint64_t>& evicted) {
  if (where_.count(key)) {
    touch(key);
    return;
  }
  window_.push_front(key);
  where_[key] = Place{Segment::Window, window_.begin()};
  if (window_.size() <= windowCap_) return;
  std::uint64_t candidate = window_.back();
  window_.pop_back();
  where_.erase(candidate);
  admit(candidate, evicted);
}

void TinyLfuPolicy::admit(std::uint64_t candidate, std::vector<std::uint64_t>& evicted) {
  const std::size_t mainCap = capacity_ - windowCap_;
  if (probation_.size() + protected_.size() < mainCap) {
    probation_.push_front(candidate);
    where_[candidate] = Place{Segment::Probation, probation_.begin()};
    return;
  }
  List& victims = probation_.empty() ? protected_ : probation_;
  std::uint64_t victim = victims.back();
  if (sketch_.frequency(candidate) > sketch_.frequency(victim)) {
    victims.pop_back();
    where_.erase(victim);
    evicted.push_back(victim);
    probation_.push_front(candidate);
    where_[candidate] = Place{Segment::Probation, probation_.begin()};
  } else {
    evicted.push_back(candidate);  // not admitted: the incumbent is at least as popular
  }
}

bool TinyLfuPolicy::erase(std::uint64_t key) {
  auto it = where_.find(key);
  if (it == where_.end()) return false;
  list(it->second.segment).erase(it->second.it);
  where_.erase(it);
  return true;
}

}  // namespace granary::cache
