// CacheThread's engine by object identity: lookups, get-or-fill with the cache's own fills, read-ahead,
// and what a chunk source's outcome means for the cache (the fill's state, the object's metadata, the
// counters). Chunk keys are built here (ObjectId), never by callers.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

#include <cstring>

#include "cache/chunk_cache.h"

namespace granary::cache {

namespace asio = boost::asio;

asio::awaitable<ConstChunkPtr> CacheThread::lookup(const ObjectId& obj, std::uint32_t index, Tier* tier) {
  const std::string key = obj.chunkKey(index);
  co_return co_await lookup(key, hashBytes(key), obj.chunkLength(index), tier);
}

asio::awaitable<CacheThread::ChunkRead> CacheThread::getOrFill(const ObjectId& obj, std::uint32_t index,
                                                               const ChunkSourcePtr& source) {
  std::string key = obj.chunkKey(index);
  const std::uint64_t length = obj.chunkLength(index);
  ChunkRead r;
  r.chunk = co_await lookup(key, hashBytes(key), length, &r.tier);
  if (r.chunk) {
    r.status = ChunkRead::Status::Hit;
    co_return r;
  }
  CacheStats& st = cache_.stats();
  auto [fill, leader] = cache_.fills().acquire(key, [&] { return std::make_shared<Chunk>(key, length); });
  if (leader) {
    spawnFill(obj, index, fill, std::move(key), source);
  } else if (fill->sharedChunk()->valueSize() != length) {
    // Started by a request that saw another size under the same ETag: the object is being rewritten.
    st.lengthErrors.fetch_add(1, std::memory_order_relaxed);
    cache_.invalidateMeta(obj.metaKey());
    spdlog::warn("cache: chunk {} of an object is being fetched as {} bytes, a reader expects {}: the object changed",
                 index, fill->sharedChunk()->valueSize(), length);
    r.status = ChunkRead::Status::Changed;
    co_return r;
  } else if (fill->state() == Fill::State::Failed) {
    co_return r;  // Retry: it failed a moment ago and is leaving the table
  } else {
    st.fillWaits.fetch_add(1, std::memory_order_relaxed);
  }
  r.status = ChunkRead::Status::Filling;
  r.fill = std::move(fill);
  co_return r;
}

bool CacheThread::prefetch(const ObjectId& obj, std::uint32_t index, ChunkSourcePtr source, std::size_t maxFills) {
  if (cache_.fills().size() >= maxFills) return false;
  std::string key = obj.chunkKey(index);
  if (cache_.couldExist(hashBytes(key))) return false;
  const std::uint64_t length = obj.chunkLength(index);
  auto [fill, leader] = cache_.fills().acquire(key, [&] { return std::make_shared<Chunk>(key, length); });
  if (leader) spawnFill(obj, index, std::move(fill), std::move(key), std::move(source));
  return leader;
}

std::uint32_t CacheThread::chunksOnHand(const ObjectId& obj, std::uint32_t first, std::uint32_t last,
                                        bool countFinishedFills) const {
  std::uint32_t n = 0;
  for (std::uint32_t i = first; i <= last && first <= last; ++i) {
    const std::string key = obj.chunkKey(i);
    bool have = cache_.couldExist(hashBytes(key));
    // A chunk whose fill finished is served from that fill's bytes while its insert completes.
    if (!have && countFinishedFills)
      if (const auto fill = cache_.fills().find(key); fill && fill->state() == Fill::State::Done) have = true;
    n += have ? 1 : 0;
  }
  return n;
}

asio::awaitable<void> CacheThread::insert(const ObjectId& obj, std::uint32_t index, std::string_view bytes) {
  auto chunk = std::make_shared<Chunk>(obj.chunkKey(index), bytes.size());
  std::memcpy(chunk->value(), bytes.data(), bytes.size());
  chunk->seal();
  co_await insert(std::move(chunk), obj.chunkLength(index));
}

void CacheThread::remove(const ObjectId& obj, std::uint32_t index) { cache_.forgetChunk(hashBytes(obj.chunkKey(index))); }

void CacheThread::countServed(const ChunkRead& read, std::uint64_t bytes) {
  if (read.status != ChunkRead::Status::Hit) return;
  CacheStats& st = cache_.stats();
  st.bytesFromCache.fetch_add(bytes, std::memory_order_relaxed);
  (read.tier == Tier::Ram ? st.bytesFromRam : st.bytesFromDisk).fetch_add(bytes, std::memory_order_relaxed);
}

void CacheThread::spawnFill(const ObjectId& obj, std::uint32_t index, FillPtr fill, std::string key,
                            ChunkSourcePtr source) {
  asio::co_spawn(ex_, runFill(obj, index, std::move(fill), std::move(key), std::move(source)), asio::detached);
}

asio::awaitable<bool> CacheThread::fillFromCache(Fill& fill, const std::string& key) {
  const std::uint64_t len = fill.chunk().valueSize();
  if (!cache_.couldExist(hashBytes(key))) co_return false;
  auto held = co_await lookup(key, hashBytes(key), len);
  if (!held) co_return false;
  std::memcpy(fill.chunk().value(), held->value(), static_cast<std::size_t>(len));
  fill.advance(static_cast<std::size_t>(len));
  fill.chunk().seal();
  co_return true;
}

asio::awaitable<void> CacheThread::runFill(ObjectId obj, std::uint32_t index, FillPtr fill, std::string key,
                                           ChunkSourcePtr source) {
  CacheStats& st = cache_.stats();
  FillGuard guard{cache_.fills(), key, fill};
  st.fillsStarted.fetch_add(1, std::memory_order_relaxed);
  // The previous fill of this chunk may have ended (and left the table) between the caller's lookup and
  // its taking this fill: the cache holds the bytes now, so they fill this one instead of the source.
  if (co_await fillFromCache(*fill, key)) {
    guard.ok = true;
    fill->finish(true);
    co_return;
  }
  const std::uint64_t len = fill->chunk().valueSize();
  ChunkSink sink(*fill);
  const ChunkRequest req{obj, index, obj.chunkOffset(index), len};
  const FetchOutcome outcome = co_await source->fetch(req, sink);
  if (outcome == FetchOutcome::Ok && sink.written() != len) {
    spdlog::error("cache: a chunk source reported chunk {} whole after {} of {} bytes: dropped", index,
                  sink.written(), len);
    co_return;  // (a source's bug; never served as complete)
  }
  switch (outcome) {
    case FetchOutcome::Ok:
      break;
    case FetchOutcome::LengthMismatch:
      st.lengthErrors.fetch_add(1, std::memory_order_relaxed);
      [[fallthrough]];
    case FetchOutcome::Changed:
      cache_.invalidateMeta(obj.metaKey());  // its old metadata (and with it the old chunks) must go
      co_return;
    case FetchOutcome::Failed:
      co_return;
  }
  const std::uint64_t fromPeers = std::min<std::uint64_t>(sink.peerBytes(), len);
  st.bytesFromBackend.fetch_add(len - fromPeers, std::memory_order_relaxed);
  st.bytesFromPeers.fetch_add(fromPeers, std::memory_order_relaxed);
  fill->chunk().seal();
  guard.ok = true;
  fill->finish(true);
  // Readers already have the bytes; the fill stays findable until the cache holds the chunk.
  ConstChunkPtr whole = fill->sharedChunk();  // (named: GCC 12 coroutines)
  co_await insert(std::move(whole), len, sink.borrowed());
}

}  // namespace granary::cache
