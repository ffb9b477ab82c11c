#pragma once
// The RAM tier: the hottest chunks, bounded in bytes, in front of the disk tier. An LRU list with
// TinyLFU admission (a newcomer displaces the least recent chunks only if it is accessed more often
// than they are), so one cold scan cannot flush it. Thread-safe: power-of-two lock stripes chosen by the
// key hash's high bits (each stripe an LRU, a sketch and a share of the capacity; no I/O under a lock).
// A small tier (under 16 chunks a stripe) is one stripe, which is exactly one global LRU.

#include <boost/unordered/unordered_flat_map.hpp>

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "cache/chunk.h"
#include "cache/eviction_policy.h"

namespace granary::cache {

class RamTier {
 public:
  /// @param capacity bytes of chunk entries to hold; @param chunkSize sizes the stripes and the sketches.
  RamTier(std::uint64_t capacity, std::uint64_t chunkSize);

  /// @return the chunk if resident and its full key matches `key`.
  ConstChunkPtr get(std::uint64_t hash, std::string_view key);
  /// recordAccess(hash), then get(hash, key), under one lock of the stripe: a reader's lookup.
  ConstChunkPtr access(std::uint64_t hash, std::string_view key);
  bool contains(std::uint64_t hash) const;
  /// Counts an access for admission (call on every lookup, hit or miss).
  void recordAccess(std::uint64_t hash);
  /// Offers a chunk. @return whether it was admitted.
  bool put(std::uint64_t hash, ConstChunkPtr chunk);
  void remove(std::uint64_t hash);

  std::uint64_t bytes() const;
  std::uint64_t capacity() const { return capacity_; }
  std::size_t size() const;
  std::size_t stripes() const { return stripes_.size(); }
  /// Chunks displaced to make room for others.
  std::uint64_t evictions() const { return evictions_.load(std::memory_order_relaxed); }

 private:
  using Order = std::list<std::uint64_t>;  // front = most recent
  struct Item {
    ConstChunkPtr chunk;
    Order::iterator pos;
  };
  using Map = boost::unordered_flat_map<std::uint64_t, Item>;
  struct Stripe {
    Stripe(std::uint64_t cap, std::size_t sketchSize) : capacity(cap), sketch(sketchSize) {}
    const std::uint64_t capacity;
    mutable std::mutex m;
    // Guarded by m:
    std::uint64_t bytes = 0;
    Order order;
    Map items;
    FrequencySketch sketch;
  };
  Stripe& stripeOf(std::uint64_t hash) const { return *stripes_[(hash >> 56) & (stripes_.size() - 1)]; }
  static void eraseLocked(Stripe& s, Map::iterator it);
  static ConstChunkPtr getLocked(Stripe& s, std::uint64_t hash, std::string_view key);

  const std::uint64_t capacity_;
  std::atomic<std::uint64_t> evictions_{0};
  std::vector<std::unique_ptr<Stripe>> stripes_;  // a power of two of them
};

}  // namespace granary::cache
