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
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/chunk.h"
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
  boost::asio::awaitable<void> insert(ConstChunkPtr chunk, std::uint64_t expectedLength);

  /// Metadata from RAM, else from disk (then marked fromDisk). Null if absent.
  boost::asio::awaitable<std::shared_ptr<const ObjectMeta>> lookupMeta(const std::string& metaKey);
  /// Stores metadata in RAM and on disk, unless the key was invalidated since `epoch` was read.
  boost::asio::awaitable<void> storeMeta(const std::string& metaKey, std::shared_ptr<const ObjectMeta> meta,
                                         std::uint64_t epoch);

 private:
  ChunkCache& cache_;
  boost::asio::any_io_executor ex_;
  std::unique_ptr<DiskIo> disk_;
};

}  // namespace granary::cache
