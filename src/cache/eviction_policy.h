#pragma once
// Admission and eviction for the chunk cache: W-TinyLFU (Einziger, Friedman, Manes, "TinyLFU", 2017; the
// policy of Caffeine). A small LRU window takes new entries; a segmented LRU (probation + protected)
// holds the rest; an entry leaving the window enters the main space only if a count-min sketch says it
// is accessed more often than the entry it would evict. Ties keep the incumbent, which is what makes
// loops larger than the cache (an AI training epoch) keep a stable half instead of nothing, where LRU,
// FIFO and S3-FIFO hit ~0%.
//
// Pure bookkeeping over 64-bit key hashes: no I/O, no locks (one instance per shard, under its lock).

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace granary::cache {

/// A count-min sketch of 4-bit counters with periodic halving (aging), 4 hash rows.
class FrequencySketch {
 public:
  /// @param capacity the number of entries the cache holds; sizes the sketch and the aging period.
  explicit FrequencySketch(std::size_t capacity);
  void increment(std::uint64_t hash);
  /// Estimated recent access count, 0..15.
  unsigned frequency(std::uint64_t hash) const;
  std::size_t memoryBytes() const { return counters_.capacity(); }

 private:
  std::size_t index(std::uint64_t hash, int row) const;
  void halve();

  std::vector<std::uint8_t> counters_;  // one 4-bit counter per byte, for simplicity
  std::size_t mask_;
  std::size_t additions_ = 0;
  std::size_t samplePeriod_;
};

class TinyLfuPolicy {
 public:
  /// @param capacity entries the cache may hold (>= 2).
  explicit TinyLfuPolicy(std::size_t capacity);

  /// Records an access (hit or miss) in the frequency sketch; call it for every lookup.
  void recordAccess(std::uint64_t key);
  /// A hit on a resident key: refreshes its position. @return false if the key is not resident.
  bool touch(std::uint64_t key);
  /// Inserts a new key (after a miss was filled). Keys the cache must drop, possibly including `key`
  /// itself when it was not admitted, are appended to `evicted`.
  void insert(std::uint64_t key, std::vector<std::uint64_t>& evicted);
  /// Forgets a key (invalidation, checksum failure). @return false if it was not resident.
  bool erase(std::uint64_t key);

  bool contains(std::uint64_t key) const { return where_.count(key) != 0; }
  std::size_t size() const { return where_.size(); }
  std::size_t capacity() const { return capacity_; }

 private:
  enum class Segment : std::uint8_t { Window, Probation, Protected };
  using List = std::list<std::uint64_t>;  // front = most recent
  struct Place {
    Segment segment;
    List::iterator it;
  };

  List& list(Segment s);
  void moveTo(std::uint64_t key, Place& p, Segment to);
  /// Offers `candidate` (just out of the window) to the main space.
  void admit(std::uint64_t candidate, std::vector<std::uint64_t>& evicted);

  std::size_t capacity_;
  std::size_t windowCap_;
  std::size_t protectedCap_;
  List window_, probation_, protected_;
  std::unordered_map<std::uint64_t, Place> where_;
  FrequencySketch sketch_;
};

}  // namespace granary::cache
