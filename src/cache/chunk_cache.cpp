#include "cache/chunk_cache.h"

#include "common/log_escape.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include <cstring>

namespace granary::cache {

namespace asio = boost::asio;

namespace {
/// A borrowed chunk (another node owns it) goes to disk once the sketch has seen it this often.
constexpr unsigned kBorrowedMinFrequency = 2;
}  // namespace

ChunkCache::ChunkCache(CacheOptions opts) : opts_(std::move(opts)) {
  if (opts_.chunkSize < 64 * 1024 || opts_.chunkSize > (64u << 20) || opts_.chunkSize % kBlockSize != 0)
    throw std::runtime_error("chunk size must be a multiple of 4 KiB between 64 KiB and 64 MiB");
  if (opts_.ramBytes > 0) ram_ = std::make_unique<RamTier>(opts_.ramBytes, opts_.chunkSize);
  if (!opts_.dirs.empty()) {
    DiskTierOptions d;
    d.dirs = opts_.dirs;
    d.chunkSize = opts_.chunkSize;
    d.regionSize = opts_.regionSize;
    d.directIo = opts_.directIo;
    d.openFile = opts_.openFile;
    disk_ = std::make_unique<DiskTier>(std::move(d));
    if (opts_.directIo)
      for (const auto& st : disk_->status())
        if (!st.directIo && !st.failed)
          spdlog::warn("cache: {} refused O_DIRECT (tmpfs and some other file systems do): its disk tier goes "
                       "through the page cache",
                       logSafe(st.path));
  }
}

ChunkCache::~ChunkCache() { close(); }

void ChunkCache::close() {
  if (disk_) disk_->close();
}

std::shared_ptr<const ObjectMeta> ChunkCache::metaInRam(const std::string& metaKey) const {
  const MetaStripe& s = meta_[hashBytes(metaKey) % kMetaStripes];
  std::lock_guard lk(s.m);
  auto it = s.map.find(metaKey);
  return it == s.map.end() ? nullptr : it->second;
}

void ChunkCache::metaToRam(const std::string& metaKey, std::shared_ptr<const ObjectMeta> meta) {
  MetaStripe& s = meta_[hashBytes(metaKey) % kMetaStripes];
  std::lock_guard lk(s.m);
  if (s.map.size() >= opts_.metaEntries / kMetaStripes && !s.map.contains(metaKey))
    s.map.erase(s.map.begin());  // bounded: drop an arbitrary entry (it is still on disk, if any)
  s.map.insert_or_assign(metaKey, std::move(meta));
}

std::uint64_t ChunkCache::metaEpoch(const std::string& metaKey) const {
  const EpochSlot& e = epochs_[hashBytes(metaKey) % kEpochSlots];
  std::lock_guard lk(e.m);
  return e.epoch;
}

void ChunkCache::invalidateMeta(const std::string& metaKey) {
  EpochSlot& e = epochs_[hashBytes(metaKey) % kEpochSlots];
  std::lock_guard guard(e.m);  // no storeMeta() publishes while this runs
  ++e.epoch;
  {
    MetaStripe& s = meta_[hashBytes(metaKey) % kMetaStripes];
    std::lock_guard lk(s.m);
    s.map.erase(metaKey);
  }
  const std::uint64_t h = hashBytes(metaKey);
  if (ram_) ram_->remove(h);
  if (disk_) disk_->index().remove(h);
  stats_.invalidations.fetch_add(1, std::memory_order_relaxed);
}

namespace {
std::size_t bucketSlot(std::string_view backendId, std::string_view bucket, std::size_t slots) {
  return (hashBytes(backendId) * 0x9E3779B97F4A7C15ull ^ hashBytes(bucket)) % slots;
}
}  // namespace

void ChunkCache::invalidateBucket(std::string_view backendId, std::string_view bucket) {
  bucketEpochs_[bucketSlot(backendId, bucket, kEpochSlots)].fetch_add(1, std::memory_order_acq_rel);
  stats_.bucketInvalidations.fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t ChunkCache::bucketEpoch(std::string_view backendId, std::string_view bucket) const {
  return bucketEpochs_[bucketSlot(backendId, bucket, kEpochSlots)].load(std::memory_order_acquire);
}

void ChunkCache::forgetChunk(std::uint64_t hash) {
  if (ram_) ram_->remove(hash);
  if (disk_) disk_->index().remove(hash);
}

bool ChunkCache::couldExist(std::uint64_t hash) const {
  return (ram_ && ram_->contains(hash)) || (disk_ && disk_->index().find(hash));
}

std::string ChunkCache::describe() const {
  std::string out = fmt::format("chunk {} KiB, RAM tier {} MiB", opts_.chunkSize >> 10, opts_.ramBytes >> 20);
  if (disk_)
    for (const auto& d : disk_->status())
      out += fmt::format(", {} ({} MiB, {}{})", d.path, d.capacity >> 20, d.directIo ? "O_DIRECT" : "page cache",
                         d.failed ? ", out of service" : "");
  else
    out += ", no disk tier";
  return out;
}

CacheThread::CacheThread(ChunkCache& cache, asio::any_io_executor ex) : cache_(cache), ex_(ex) {
  if (cache_.disk()) disk_ = std::make_unique<DiskIo>(*cache_.disk(), ex);
}

namespace {
/// A cached value of another length than the object's size implies for its index (the object was
/// rewritten with the same ETag, say, as s3rver's non-atomic overwrite does): never served.
bool wrongLength(const Chunk& c, std::uint64_t expectedLength) {
  return expectedLength != CacheThread::kAnyLength && c.valueSize() != expectedLength;
}
}  // namespace

asio::awaitable<ConstChunkPtr> CacheThread::lookup(const std::string& key, std::uint64_t hash,
                                                   std::uint64_t expectedLength, Tier* tier) {
  CacheStats& st = cache_.stats();
  auto dropWrongLength = [&](const Chunk& c) {
    st.lengthErrors.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("cache: a cached chunk holds {} bytes where its object's size implies {}: dropped",
                 c.valueSize(), expectedLength);
    cache_.forgetChunk(hash);
  };
  if (RamTier* ram = cache_.ram()) {
    if (auto c = ram->access(hash, key)) {  // (counts the access, hit or miss, for admission)
      if (wrongLength(*c, expectedLength)) {
        dropWrongLength(*c);
        st.misses.fetch_add(1, std::memory_order_relaxed);
        co_return nullptr;
      }
      st.ramHits.fetch_add(1, std::memory_order_relaxed);
      if (tier) *tier = Tier::Ram;
      co_return c;
    }
  }
  if (DiskTier* disk = cache_.disk()) {
    DiskIndex& index = disk->index();
    index.recordAccess(hash);
    if (auto loc = index.find(hash)) {
      auto r = co_await disk_->read(*loc, key);
      if (r.status == EntryStatus::Ok && wrongLength(*r.chunk, expectedLength)) {
        dropWrongLength(*r.chunk);
      } else if (r.status == EntryStatus::Ok) {
        st.diskHits.fetch_add(1, std::memory_order_relaxed);
        if (tier) *tier = Tier::Disk;
        ConstChunkPtr c = std::move(r.chunk);
        if (RamTier* ram = cache_.ram()) ram->put(hash, c);
        co_return c;
      }
      if (r.ioError) {
        st.readErrors.fetch_add(1, std::memory_order_relaxed);
      } else if (r.status == EntryStatus::Corrupt) {
        st.checksumErrors.fetch_add(1, std::memory_order_relaxed);
        if (index.removeIfAt(hash, *loc))
          spdlog::warn("cache: checksum mismatch in {} at block {}: entry dropped, refetching",
                       disk->status()[loc->dir].path, loc->block);
      } else {
        index.removeIfAt(hash, *loc);  // the slot now holds another key (hash collision or reuse)
      }
    }
  }
  st.misses.fetch_add(1, std::memory_order_relaxed);
  co_return nullptr;
}

asio::awaitable<void> CacheThread::insert(ConstChunkPtr chunk, std::uint64_t expectedLength, bool borrowed) {
  const std::uint64_t hash = chunk->keyHash();
  CacheStats& st = cache_.stats();
  if (wrongLength(*chunk, expectedLength)) {
    st.lengthErrors.fetch_add(1, std::memory_order_relaxed);
    st.insertsRejected.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  st.inserts.fetch_add(1, std::memory_order_relaxed);
  if (RamTier* ram = cache_.ram()) ram->put(hash, chunk);
  DiskTier* disk = cache_.disk();
  if (!disk) co_return;
  DiskIndex& index = disk->index();
  if (borrowed && index.frequency(hash) < kBorrowedMinFrequency) {
    st.borrowedSkipped.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  auto slot = index.reserve(hash, chunk->entrySize());
  if (!slot) {
    st.insertsRejected.fetch_add(1, std::memory_order_relaxed);
    co_return;
  }
  if (co_await disk_->write(*slot, *chunk)) {
    index.commit(*slot, hash);
  } else {
    st.writeErrors.fetch_add(1, std::memory_order_relaxed);
    index.abort(*slot);
  }
}

asio::awaitable<std::shared_ptr<const ObjectMeta>> CacheThread::lookupMeta(const std::string& metaKey) {
  if (auto m = cache_.metaInRam(metaKey)) co_return m;
  if (!cache_.disk()) co_return nullptr;
  // An invalidation (or a newer record published) while the disk read runs wins over what it reads: the
  // record read is published only if the key's epoch is unchanged and RAM still holds nothing for it.
  const std::uint64_t epoch = cache_.metaEpoch(metaKey);
  auto chunk = co_await lookup(metaKey, hashBytes(metaKey), kAnyLength);
  if (!chunk) co_return nullptr;
  auto parsed = parseMeta(std::string_view(chunk->value(), chunk->valueSize()));
  if (!parsed) co_return nullptr;
  parsed->fromDisk = true;
  auto m = std::make_shared<const ObjectMeta>(std::move(*parsed));
  ChunkCache::EpochSlot& e = cache_.epochs_[hashBytes(metaKey) % ChunkCache::kEpochSlots];
  std::lock_guard guard(e.m);
  if (e.epoch != epoch) co_return nullptr;
  if (auto newer = cache_.metaInRam(metaKey)) co_return newer;
  cache_.metaToRam(metaKey, m);
  co_return m;
}

asio::awaitable<void> CacheThread::storeMeta(const std::string& metaKey, std::shared_ptr<const ObjectMeta> meta,
                                             std::uint64_t epoch) {
  // Published in RAM at once, only if no invalidation of the key happened since `epoch` was read: the
  // request that fetched it (and every one waiting on its metadata fill) goes on without waiting for the
  // disk. The disk copy, an entry of its own (admission applies as for chunks), is written in the
  // background and committed only if the key is still what was published (metaToDisk).
  {
    ChunkCache::EpochSlot& e = cache_.epochs_[hashBytes(metaKey) % ChunkCache::kEpochSlots];
    std::lock_guard guard(e.m);
    if (e.epoch != epoch) co_return;
    cache_.metaToRam(metaKey, meta);
  }
  if (cache_.disk() && !cache_.disk()->index().dirFailedAll() && metaWrites_ < kMaxMetaWrites) {
    ++metaWrites_;
    asio::co_spawn(ex_, metaToDisk(metaKey, std::move(meta), epoch), asio::detached);
  }
}

asio::awaitable<void> CacheThread::metaToDisk(std::string metaKey, std::shared_ptr<const ObjectMeta> meta,
                                              std::uint64_t epoch) {
  struct Done {  // storeMeta counted this write in
    std::size_t& n;
    ~Done() { --n; }
  } done{metaWrites_};
  const std::uint64_t hash = hashBytes(metaKey);
  const std::string bytes = serializeMeta(*meta);
  auto chunk = std::make_shared<Chunk>(metaKey, bytes.size());
  std::memcpy(chunk->value(), bytes.data(), bytes.size());
  chunk->seal();
  DiskIndex& index = cache_.disk()->index();
  index.recordAccess(hash);
  const std::optional<Slot> slot = index.reserve(hash, chunk->entrySize());
  if (!slot) co_return;
  if (!co_await disk_->write(*slot, *chunk)) {
    index.abort(*slot);
    co_return;
  }
  ChunkCache::EpochSlot& e = cache_.epochs_[hash % ChunkCache::kEpochSlots];
  std::lock_guard guard(e.m);  // (invalidateMeta takes it first too)
  // Invalidated since, or a newer answer published over this one (RAM holds another record): the disk
  // must not bring this one back. (RAM holding none: the bounded map dropped it; the disk keeps it.)
  const auto inRam = cache_.metaInRam(metaKey);
  if (e.epoch != epoch || (inRam && inRam != meta)) {
    index.abort(*slot);
    co_return;
  }
  index.commit(*slot, hash);
}

}  // namespace granary::cache
