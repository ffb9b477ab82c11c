#include "cache/chunk_cache.h"

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
      out += fmt::format(", {} ({} MiB{})", d.path, d.capacity >> 20, d.failed ? ", out of service" : "");
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
    ram->recordAccess(hash);
    if (auto c = ram->get(hash, key)) {
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
  auto chunk = co_await lookup(metaKey, hashBytes(metaKey), kAnyLength);
  if (!chunk) co_return nullptr;
  auto parsed = parseMeta(std::string_view(chunk->value(), chunk->valueSize()));
  if (!parsed) co_return nullptr;
  parsed->fromDisk = true;
  auto m = std::make_shared<const ObjectMeta>(std::move(*parsed));
  cache_.metaToRam(metaKey, m);
  co_return m;
}

asio::awaitable<void> CacheThread::storeMeta(const std::string& metaKey, std::shared_ptr<const ObjectMeta> meta,
                                             std::uint64_t epoch) {
  // Metadata goes to disk as an entry of its own (the RAM map is its RAM tier); admission applies as
  // for chunks. It is published only if no invalidation of the key happened since `epoch` was read.
  std::optional<Slot> slot;
  const std::uint64_t hash = hashBytes(metaKey);
  if (cache_.disk() && !cache_.disk()->index().dirFailedAll()) {
    const std::string bytes = serializeMeta(*meta);
    auto chunk = std::make_shared<Chunk>(metaKey, bytes.size());
    std::memcpy(chunk->value(), bytes.data(), bytes.size());
    chunk->seal();
    DiskIndex& index = cache_.disk()->index();
    index.recordAccess(hash);
    slot = index.reserve(hash, chunk->entrySize());
    if (slot && !co_await disk_->write(*slot, *chunk)) {
      index.abort(*slot);
      slot.reset();
    }
  }
  ChunkCache::EpochSlot& e = cache_.epochs_[hash % ChunkCache::kEpochSlots];
  std::lock_guard guard(e.m);
  if (e.epoch != epoch) {
    if (slot) cache_.disk()->index().abort(*slot);
    co_return;
  }
  cache_.metaToRam(metaKey, std::move(meta));
  if (slot) cache_.disk()->index().commit(*slot, hash);
}

}  // namespace granary::cache
