#pragma once
// The disk tier's bookkeeping, without any I/O: where each cached entry lives, and how each cache
// directory's space is handed out. Pure and thread-safe, so the trace benchmark drives exactly the code
// that runs in production.
//
// Space: each directory is one preallocated file cut into equal regions (CacheLib Navy's BlockCache).
// Entries are appended to the active region; when it is full the next region in ring order becomes
// active, and whatever it held is dropped at once (FIFO by region: sequential writes, no fragmentation,
// and a directory can never exceed its size). A region can be reclaimed only when no write into it is
// in flight.
//
// Eviction and admission (TinyLFU over a clock of regions): while free space remains everything is
// admitted. Once the ring is full, the next region to reuse is the coldest of the next few in ring order
// (by the mean count-min-sketch frequency of its entries; hot regions are skipped and live another round),
// and a newcomer may reclaim it only if it is itself accessed more often than that. Ties keep the
// incumbents: a training epoch larger than the cache (a cyclic scan) keeps a stable part resident
// instead of churning to 0% like LRU/FIFO.
//
// Index: 64 lock stripes of flat hash maps, key hash -> 8-byte location. Hashes only: the full key is in
// the entry on disk and is compared on every read. Lock order: directory, then stripe, then sketch.

#include <boost/unordered/unordered_flat_map.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "cache/eviction_policy.h"

namespace granary::cache {

/// Where an entry lives: 8 bytes.
struct Location {
  std::uint32_t block = 0;   // offset in the directory's data file, in 4 KiB blocks
  std::uint16_t blocks = 0;  // entry size in 4 KiB blocks
  std::uint8_t dir = 0;
  std::uint8_t reserved = 0;
};
static_assert(sizeof(Location) == 8);

/// Space handed out for one entry; commit() or abort() it exactly once.
struct Slot {
  std::uint8_t dir = 0;
  std::uint32_t region = 0;
  std::uint32_t gen = 0;
  Location loc;
  std::uint64_t offset() const { return std::uint64_t{loc.block} * 4096; }
  std::uint64_t size() const { return std::uint64_t{loc.blocks} * 4096; }
};

/// What the index asks to be journaled, in order, so a restart can rebuild it.
struct IndexEvent {
  enum class Kind : std::uint8_t { Open = 1, Insert = 2, Remove = 3 } kind;
  std::uint8_t dir = 0;
  std::uint32_t region = 0;  // Open, Insert
  std::uint32_t gen = 0;     // Open: the region's new generation; Insert: the generation written into
  std::uint64_t hash = 0;    // Insert, Remove
  Location loc;              // Insert
};
using EventSink = std::function<void(const IndexEvent&)>;

struct DirGeometry {
  std::uint64_t regionSize = 16 << 20;  // multiple of 4 KiB
  std::uint32_t regions = 0;            // >= 2
};

class DiskIndex {
 public:
  /// @param expectedEntries sizes the frequency sketch.
  DiskIndex(std::vector<DirGeometry> dirs, std::size_t expectedEntries);

  /// Called (under the directory's lock) for every change, to journal it. Set before use.
  void setEventSink(EventSink sink) { sink_ = std::move(sink); }

  /// @return the entry's location, nullopt if absent or in a failed directory.
  std::optional<Location> find(std::uint64_t hash) const;
  /// Counts an access (hit or miss) for admission.
  void recordAccess(std::uint64_t hash);
  /// How often the admission sketch has seen `hash` lately (its accesses, aged).
  unsigned frequency(std::uint64_t hash) const;

  /// Space for an entry of `bytes` (rounded up to 4 KiB). nullopt: not admitted, no healthy directory,
  /// too large for a region, or the region to reclaim still has writes in flight.
  std::optional<Slot> reserve(std::uint64_t hash, std::uint64_t bytes);
  /// Publishes a written entry (replacing any older one of the same hash).
  void commit(const Slot& slot, std::uint64_t hash);
  /// Gives up a reservation whose write failed.
  void abort(const Slot& slot);

  /// Forgets an entry (invalidation). @return whether it was present.
  bool remove(std::uint64_t hash);
  /// Forgets an entry only if it is still at `loc` (a corrupt read must not drop a newer copy).
  bool removeIfAt(std::uint64_t hash, const Location& loc);

  /// Stops using a directory (I/O errors): its entries become misses, nothing new goes there.
  void failDir(std::uint8_t dir);
  bool dirFailed(std::uint8_t dir) const { return dirs_[dir]->failed.load(std::memory_order_relaxed); }
  bool dirFailedAll() const {
    for (const auto& d : dirs_)
      if (!d->failed.load(std::memory_order_relaxed)) return false;
    return true;
  }

  /// Rebuilds a directory from its journal at start-up (before any other call). `gens[r]` is region r's
  /// generation (0 = never written); entries whose generation is not their region's current one are
  /// ignored. The next write opens the region after the newest one.
  void restoreDir(std::uint8_t dir, const std::vector<std::uint32_t>& gens,
                  const std::vector<std::pair<std::uint64_t, std::pair<Location, std::uint32_t>>>& entries);

  /// Everything needed to write a snapshot of a directory (its region generations and live entries).
  void snapshotDir(std::uint8_t dir, std::vector<std::uint32_t>& gens,
                   std::vector<std::pair<std::uint64_t, Location>>& entries) const;

  struct Stats {
    std::uint64_t entries = 0;
    std::uint64_t bytes = 0;  // in live regions' committed entries
    std::uint64_t admitted = 0;
    std::uint64_t rejected = 0;
    std::uint64_t regionsReclaimed = 0;
    std::uint64_t evicted = 0;             // entries dropped with their region when it was reused
    std::vector<std::uint64_t> dirBytes;  // `bytes` by directory
  };
  Stats stats() const;
  /// Bytes of RAM the index holds (maps, region entry lists, sketch), for the bytes-per-chunk figure.
  std::size_t memoryBytes() const;
  std::size_t dirCount() const { return dirs_.size(); }
  const DirGeometry& geometry(std::uint8_t dir) const { return dirs_[dir]->geo; }

 private:
  static constexpr std::size_t kStripes = 64;
  struct Stripe {
    mutable std::mutex m;
    boost::unordered_flat_map<std::uint64_t, Location> map;
  };
  struct Region {
    std::uint32_t gen = 0;  // 0 = empty since the file was created
    std::uint32_t pending = 0;
    std::uint64_t used = 0;
    std::vector<std::uint64_t> hashes;  // entries written into this generation (some may be gone)
    double score = 0;                   // mean access frequency of its entries (cached)
    std::uint32_t scoreGen = 0;
    unsigned scoreUses = 0;
  };
  struct Dir {
    explicit Dir(DirGeometry g) : geo(g), regions(g.regions) {}
    DirGeometry geo;
    std::mutex m;
    std::vector<Region> regions;
    std::uint32_t active = 0;
    bool opened = false;  // an active region exists
    std::uint32_t nextGen = 1;
    std::atomic<bool> failed{false};
  };

  Stripe& stripe(std::uint64_t hash) const { return stripes_[hash >> 58]; }
  /// Opens region `r` of `d` (dropping what it held). Needs d.m.
  void openRegionLocked(std::uint8_t dirIdx, Dir& d, std::uint32_t r);
  double victimScoreLocked(Dir& d, std::uint32_t r);
  /// The region to reclaim next: the coldest of the next few in ring order without writes in flight.
  std::optional<std::uint32_t> chooseVictimLocked(Dir& d);
  std::uint32_t regionOf(const Dir& d, const Location& loc) const {
    return static_cast<std::uint32_t>(std::uint64_t{loc.block} * 4096 / d.geo.regionSize);
  }
  void emit(const IndexEvent& e) const {
    if (sink_) sink_(e);
  }

  std::vector<std::unique_ptr<Dir>> dirs_;
  mutable std::array<Stripe, kStripes> stripes_;
  mutable std::mutex sketchMutex_;
  FrequencySketch sketch_;
  EventSink sink_;
  std::atomic<std::uint64_t> admitted_{0}, rejected_{0}, reclaimed_{0}, evicted_{0};
};

}  // namespace granary::cache
