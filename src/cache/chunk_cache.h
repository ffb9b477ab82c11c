#pragma once
// The cache as s3api sees it: a RAM tier in front of an optional disk tier, the table of fills in flight,
// and object metadata. ChunkCache is shared by all I/O threads; each thread talks to it through its own
// CacheThread (which owns that thread's io_uring file handles). Nothing here knows about HTTP or S3
// beyond the opaque ObjectMeta.
//
// Outcomes are values (CacheLib's Status): a lookup returns a chunk or nothing; a corrupt entry is
// dropped, counted and reported as a miss; a failing directory is taken out of service and its chunks
// become misses.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cache/chunk.h"
#include "cache/chunk_source.h"
#include "cache/disk_tier.h"
#include "cache/fill.h"
#include "cache/object_meta.h"
#include "cache/ram_tier.h"

namespace granary::cache {

struct CacheOptions {
  std::vector<CacheDirSpec> dirs;  // none: no disk tier
  std::uint64_t ramBytes = 0;      // 0: no RAM tier
  std::uint64_t chunkSize = 4 << 20;
  std::uint64_t regionSize = 0;    // 0: derived from chunkSize
  std::size_t metaEntries = 1 << 20;
  bool directIo = true;
  std::function<int(const std::string&, int)> openFile;  // tests: failing devices
};

struct CacheStats {
  std::atomic<std::uint64_t> ramHits{0}, diskHits{0}, misses{0};
  std::atomic<std::uint64_t> checksumErrors{0}, readErrors{0}, writeErrors{0};
  std::atomic<std::uint64_t> inserts{0}, insertsRejected{0};
  std::atomic<std::uint64_t> bytesFromCache{0}, bytesFromBackend{0};
  /// Fill bytes another node's cache supplied (a cluster's peers), not counted in bytesFromBackend.
  std::atomic<std::uint64_t> bytesFromPeers{0};
  /// Borrowed chunks (another node's to keep) not written to disk on first sight.
  std::atomic<std::uint64_t> borrowedSkipped{0};
  std::atomic<std::uint64_t> bytesFromRam{0}, bytesFromDisk{0};  // bytesFromCache by tier
  std::atomic<std::uint64_t> fillsStarted{0}, fillWaits{0}, revalidations{0}, invalidations{0};
  /// Chunks whose length was not what the object's size implies for their index (dropped, never served).
  std::atomic<std::uint64_t> lengthErrors{0};
  /// Whole-bucket invalidations (writes Granary could not attribute to keys).
  std::atomic<std::uint64_t> bucketInvalidations{0};
  /// Answers served from cached metadata the backend could not revalidate (stale-if-error).
  std::atomic<std::uint64_t> staleServed{0};
};

class ChunkCache {
 public:
  /// Blocking (opens and loads cache directories): start-up only. Throws std::runtime_error on a
  /// configuration mistake.
  explicit ChunkCache(CacheOptions opts);
  ~ChunkCache();

  bool enabled() const { return ram_ || disk_; }
  std::uint64_t chunkSize() const { return opts_.chunkSize; }
  RamTier* ram() { return ram_.get(); }
  DiskTier* disk() { return disk_.get(); }
  FillTable& fills() { return fills_; }
  FillTable& metaFills() { return metaFills_; }
  CacheStats& stats() { return stats_; }

  /// Metadata held in RAM (null if absent).
  std::shared_ptr<const ObjectMeta> metaInRam(const std::string& metaKey) const;
  void metaToRam(const std::string& metaKey, std::shared_ptr<const ObjectMeta> meta);
  /// Drops an object's metadata from RAM and disk: its chunks become unreachable until revalidated.
  void invalidateMeta(const std::string& metaKey);
  /// Drops one chunk from RAM and disk (admin invalidation; the bytes stay until their region is reused).
  void forgetChunk(std::uint64_t hash);
  /// A counter that invalidateMeta() bumps for this key (and a few others sharing its slot). Read it
  /// before asking the backend; storeMeta() refuses metadata fetched before an invalidation.
  std::uint64_t metaEpoch(const std::string& metaKey) const;

  /// Conservative invalidation of every object of a bucket (a write whose keys Granary cannot tell): the
  /// bucket's epoch moves on, and metadata read before it must be revalidated before use (chunks are
  /// keyed by ETag, so unchanged objects keep their bytes). `bucket` is its name at backend `backendId`.
  void invalidateBucket(std::string_view backendId, std::string_view bucket);
  /// The bucket's epoch: read it before asking the backend, stamp the metadata with it, and trust
  /// metadata only while the stamp equals the current epoch. (Slots are shared by hash: a collision
  /// only costs extra revalidations.) No allocation: it runs on every cached read.
  std::uint64_t bucketEpoch(std::string_view backendId, std::string_view bucket) const;

  /// Whether a chunk is (probably) cached, without I/O: for X-Cache reporting and read-ahead.
  bool couldExist(std::uint64_t hash) const;

  /// Clean stop: journals flushed and compacted. Call once every thread stopped using the cache.
  void close();
  std::string describe() const;

 private:
  static constexpr std::size_t kMetaStripes = 16;
  struct MetaStripe {
    mutable std::mutex m;
    std::unordered_map<std::string, std::shared_ptr<const ObjectMeta>> map;
  };

  CacheOptions opts_;
  std::unique_ptr<RamTier> ram_;
  std::unique_ptr<DiskTier> disk_;
  FillTable fills_;
  FillTable metaFills_;
  std::array<MetaStripe, kMetaStripes> meta_;
  static constexpr std::size_t kEpochSlots = 256;
  struct EpochSlot {
    mutable std::mutex m;
    std::uint64_t epoch = 0;
  };
  mutable std::array<EpochSlot, kEpochSlots> epochs_;
  std::array<std::atomic<std::uint64_t>, kEpochSlots> bucketEpochs_{};
  friend class CacheThread;
  CacheStats stats_;
};

/// One I/O thread's access to the cache.
class CacheThread {
 public:
  CacheThread(ChunkCache& cache, boost::asio::any_io_executor ex);

  ChunkCache& cache() { return cache_; }
  const boost::asio::any_io_executor& executor() const { return ex_; }

  enum class Tier { None, Ram, Disk };
  /// Any length (metadata entries, whose length is their serialized size).
  static constexpr std::uint64_t kAnyLength = ~std::uint64_t{0};
  /// RAM, then disk. @return the verified chunk, or null: a miss, a corrupt entry (dropped), a failed
  /// directory, or an entry whose value is not `expectedLength` bytes long (dropped and counted in
  /// CacheStats::lengthErrors: never served, whatever its checksum says).
  /// @param expectedLength what the object's size implies for this chunk index.
  /// @param tier where it was found, when given.
  boost::asio::awaitable<ConstChunkPtr> lookup(const std::string& key, std::uint64_t hash,
                                               std::uint64_t expectedLength, Tier* tier = nullptr);
  /// Offers a complete, sealed chunk to the RAM tier and writes it to disk if admitted there. A chunk
  /// that is not `expectedLength` bytes long is refused and counted (lengthErrors).
  /// @param borrowed another node owns the chunk: to disk only if the admission sketch has seen it before.
  boost::asio::awaitable<void> insert(ConstChunkPtr chunk, std::uint64_t expectedLength, bool borrowed = false);

  // The engine by object identity (chunk_fills.cpp): chunk keys are built here, fills are owned here
  // (one downloader per chunk, its guard, length checks, insert once done, every counter).

  /// What getOrFill() found.
  struct ChunkRead {
    enum class Status : std::uint8_t {
      Hit,      // `chunk` holds the bytes (found in `tier`)
      Filling,  // `fill` is fetching them (or has): stream what is below its ready() as it grows
      Retry,    // the fill this call found had just failed: nothing to stream now, ask again later
      Changed,  // a fill of another length is under way: the object changed (its metadata was dropped)
    };
    Status status = Status::Retry;
    ConstChunkPtr chunk;
    FillPtr fill;
    Tier tier = Tier::None;
  };
  /// Chunk `index` of `obj` from RAM or disk (verified, of the length `obj` implies), or null.
  boost::asio::awaitable<ConstChunkPtr> lookup(const ObjectId& obj, std::uint32_t index, Tier* tier = nullptr);
  /// The chunk if cached, else the fill in flight for it, else a new fill fetching it from `source` in
  /// the background on this thread (counted in fillsStarted; joining one counts in fillWaits).
  /// @return Hit, Filling, Retry or Changed (see ChunkRead).
  boost::asio::awaitable<ChunkRead> getOrFill(const ObjectId& obj, std::uint32_t index,
                                                  const ChunkSourcePtr& source);
  /// Starts fetching chunk `index` from `source` in the background, unless it is cached, already in
  /// flight, or `maxFills` fills are in flight already. @return whether a fill started.
  bool prefetch(const ObjectId& obj, std::uint32_t index, ChunkSourcePtr source,
                std::size_t maxFills = std::numeric_limits<std::size_t>::max());
  /// How many of chunks [first, last] of `obj` are (probably) cached, without I/O; with
  /// `countFinishedFills`, a chunk whose fill has all its bytes (its insert under way) counts too.
  /// 0 when first > last.
  std::uint32_t chunksOnHand(const ObjectId& obj, std::uint32_t first, std::uint32_t last,
                             bool countFinishedFills = true) const;
  /// Stores `bytes` as chunk `index` of `obj` (write-through: bytes the backend just took).
  boost::asio::awaitable<void> insert(const ObjectId& obj, std::uint32_t index, std::string_view bytes);
  /// Drops chunk `index` of `obj` from RAM and disk.
  void remove(const ObjectId& obj, std::uint32_t index);
  /// Counts `bytes` of a Hit as served (bytesFromCache and its tier's counter; nothing for a fill).
  void countServed(const ChunkRead& read, std::uint64_t bytes);
  /// Chunk fills in flight on every thread.
  std::size_t fillsInFlight() const { return cache_.fills().size(); }
  /// Counts a revalidation of metadata asked of the backend (revalidations), and an answer served from
  /// metadata the backend could not revalidate (staleServed).
  void countRevalidation() { cache_.stats().revalidations.fetch_add(1, std::memory_order_relaxed); }
  void countStaleServed() { cache_.stats().staleServed.fetch_add(1, std::memory_order_relaxed); }
  /// Drops an object's metadata (ChunkCache::invalidateMeta).
  void invalidateMeta(const std::string& metaKey) { cache_.invalidateMeta(metaKey); }

  /// Metadata from RAM, else from disk (then marked fromDisk). Null if absent.
  boost::asio::awaitable<std::shared_ptr<const ObjectMeta>> lookupMeta(const std::string& metaKey);
  /// Stores metadata in RAM (at once) and on disk (in the background), unless the key was invalidated
  /// since `epoch` was read.
  boost::asio::awaitable<void> storeMeta(const std::string& metaKey, std::shared_ptr<const ObjectMeta> meta,
                                         std::uint64_t epoch);

 private:
  /// The downloader of a new fill: from the cache if a fill that ended meanwhile left the chunk there,
  /// else from `source`; then length checks, the outcome, the insert.
  boost::asio::awaitable<void> runFill(ObjectId obj, std::uint32_t index, FillPtr fill, std::string key,
                                       ChunkSourcePtr source);
  void spawnFill(const ObjectId& obj, std::uint32_t index, FillPtr fill, std::string key, ChunkSourcePtr source);
  /// storeMeta's disk copy: committed only if the key was not invalidated since `epoch` and RAM holds no
  /// newer record.
  boost::asio::awaitable<void> metaToDisk(std::string metaKey, std::shared_ptr<const ObjectMeta> meta,
                                          std::uint64_t epoch);
  /// Copies a chunk that is in the cache now into `fill`. @return whether it was there.
  boost::asio::awaitable<bool> fillFromCache(Fill& fill, const std::string& key);

  ChunkCache& cache_;
  boost::asio::any_io_executor ex_;
  std::unique_ptr<DiskIo> disk_;
  /// storeMeta's disk copies in flight on this thread (only this thread's executor touches it). Above
  /// kMaxMetaWrites the copy is skipped: it is a hint for restarts, and a flood of revalidations on a slow
  /// disk must not queue writes (memory, reserved slots) without bound.
  std::size_t metaWrites_ = 0;
  static constexpr std::size_t kMaxMetaWrites = 256;
};

}  // namespace granary::cache
