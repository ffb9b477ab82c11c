#pragma once
// The RAM tier: the hottest chunks, bounded in bytes, in front of the disk tier. An LRU list with
// TinyLFU admission (a newcomer displaces the least recent chunks only if it is accessed more often
// than they are), so one cold scan cannot flush it. Thread-safe (one lock; no I/O under it).

#include <boost/unordered/unordered_flat_map.hpp>

#include <atomic>
#include <cstdint>
#include <list>
#include <mutex>

#include "cache/chunk.h"
#include "cache/eviction_policy.h"

namespace granary::cache {

class RamTier {
 public:
  /// @param capacity bytes of chunk entries to hold; @param chunkSize sizes the frequency sketch.
  RamTier(std::uint64_t capacity, std::uint64_t chunkSize);

  /// @return the chunk if resident and its full key matches `key`.
  ConstChunkPtr get(std::uint64_t hash, std::string_view key);
  bool contains(std::uint64_t hash) const;
  /// Counts an access for admission (call on every lookup, hit or miss).
  void recordAccess(std::uint64_t hash);
  /// Offers a chunk. @return whether it was admitted.
  bool put(std::uint64_t hash, ConstChunkPtr chunk);
  void remove(std::uint64_t hash);

  std::uint64_t bytes() const;
  std::uint64_t capacity() const { return capacity_; }
  std::size_t size() const;
  /// Chunks displaced to make room for others.
  std::uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  using Order = std::list<std::uint64_t>;  // front = most recent
  struct Item {
    ConstChunkPtr chunk;
    Order::iterator pos;
  };
  void eraseLocked(boost::unordered_flat_map<std::uint64_t, Item>::iterator it);

  const std::uint64_t capacity_;
  mutable std::mutex m_;
  std::uint64_t bytes_ = 0;
  std::atomic<std::uint64_t> evictions_{0};
  Order order_;
  boost::unordered_flat_map<std::uint64_t, Item> items_;
  FrequencySketch sketch_;
};

}  // namespace granary::cache
