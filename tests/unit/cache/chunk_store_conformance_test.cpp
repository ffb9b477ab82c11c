// One conformance suite for the cache's engine API (CacheThread::getOrFill, prefetch, chunksOnHand,
// remove), run against every chunk store configuration (RAM tier only, disk tier only, both) and, where
// it is about fetching, against every kind of chunk source: an in-memory fake (whole, or trickling bytes
// over several turns of the loop), and sources that fail, report a change, report another length, or
// claim success with short data. A real io_context; the disk tier lives in a temp dir.

#include <catch2/catch.hpp>

#include <stdlib.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <cstring>
#include <filesystem>
#include <thread>

#include "cache/chunk_cache.h"
#include "support/temp_dir.h"

using namespace granary::cache;
namespace asio = boost::asio;
using Status = CacheThread::ChunkRead::Status;

namespace {

constexpr std::uint64_t kChunk = 64 << 10;
// (Named: GCC 12 coroutines and temporaries in a co_await expression.)
constexpr std::chrono::milliseconds kTick{1}, kPiece{3}, kFillTimeout{2000};

struct TempDir : granary::test::TempDir {
  TempDir() : granary::test::TempDir("granary-conformance") {}
};

struct RamOnly {
  static CacheOptions options(const TempDir&) {
    CacheOptions o;
    o.ramBytes = 8 << 20;
    o.chunkSize = kChunk;
    return o;
  }
};
struct DiskOnly {
  static CacheOptions options(const TempDir& d) {
    CacheOptions o;
    o.dirs = {{d.path.string(), 64 << 20}};
    o.chunkSize = kChunk;
    return o;
  }
};
struct RamAndDisk {
  static CacheOptions options(const TempDir& d) {
    CacheOptions o = DiskOnly::options(d);
    o.ramBytes = 8 << 20;
    return o;
  }
};

/// The byte at `pos` of the test object (any position: every source and check agrees on it).
char byteAt(std::uint64_t pos) { return static_cast<char>((pos * 2654435761u) >> 13); }

ObjectId objectOf(std::uint64_t size, std::string etag = "\"e1\"") {
  return ObjectId{"http://origin", "bucket", "dir/obj", {}, std::move(etag), size, kChunk};
}

asio::awaitable<void> sleepFor(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor);
  t.expires_after(d);
  co_await t.async_wait(asio::use_awaitable);
}

/// What a source does with a fetch.
enum class Behaviour { Whole, Trickle, Fail, Change, OtherLength, ShortOk };

/// An in-memory source of the test object's bytes; counts fetches.
class FakeSource final : public ChunkSource {
 public:
  explicit FakeSource(Behaviour b) : behaviour_(b) {}
  std::atomic<int> fetches{0};

  asio::awaitable<FetchOutcome> fetch(const ChunkRequest& req, ChunkSink& sink) override {
    fetches.fetch_add(1);
    CHECK(sink.size() == req.length);
    const std::uint64_t half = req.length / 2;
    switch (behaviour_) {
      case Behaviour::Whole:
        co_await write(req, sink, 0, req.length);
        co_return FetchOutcome::Ok;
      case Behaviour::Trickle:  // four pieces, a few ms apart: readers join mid-fill
        for (std::uint64_t at = 0; at < req.length;) {
          co_await sleepFor(kPiece);
          const std::uint64_t n = std::min<std::uint64_t>(req.length - at, req.length / 4 + 1);
          co_await write(req, sink, at, n);
          at += n;
        }
        co_return FetchOutcome::Ok;
      case Behaviour::Fail:
        co_await write(req, sink, 0, half);
        co_return FetchOutcome::Failed;
      case Behaviour::Change:
        co_return FetchOutcome::Changed;
      case Behaviour::OtherLength:
        co_return FetchOutcome::LengthMismatch;
      case Behaviour::ShortOk:  // a buggy source: claims the chunk whole after half of it
        co_await write(req, sink, 0, half);
        co_return FetchOutcome::Ok;
    }
    co_return FetchOutcome::Failed;
  }

 private:
  static asio::awaitable<void> write(const ChunkRequest& req, ChunkSink& sink, std::uint64_t at, std::uint64_t n) {
    for (std::uint64_t i = 0; i < n; ++i) sink.data()[at + i] = byteAt(req.offset + at + i);
    sink.advance(static_cast<std::size_t>(n));
    co_return;
  }
  Behaviour behaviour_;
};

/// One cache, one I/O thread's access to it, and its io_context. run() drives a coroutine (and every
/// fill it starts) to completion.
template <class Store>
struct Engine {
  TempDir dir;
  ChunkCache cache{Store::options(dir)};
  asio::io_context ioc{1};
  CacheThread thread{cache, ioc.get_executor()};

  template <class F>
  auto run(F&& f) {
    auto fut = asio::co_spawn(ioc, f(), asio::use_future);
    ioc.run();
    ioc.restart();
    return fut.get();
  }
};

/// Streams chunk `index` from what getOrFill() returned. @return the bytes, or "" when they did not all come.
asio::awaitable<std::string> readAll(const CacheThread::ChunkRead& r, std::uint64_t length) {
  if (r.status == Status::Hit) co_return std::string(r.chunk->value(), r.chunk->valueSize());
  if (r.status != Status::Filling) co_return std::string();
  std::size_t at = 0;
  while (at < length) {
    const std::size_t ready = co_await r.fill->readyPast(at, kFillTimeout);
    if (ready <= at) co_return std::string();
    at = ready;
  }
  co_return std::string(r.fill->data(), length);
}

bool rightBytes(const ObjectId& obj, std::uint32_t index, const std::string& got) {
  if (got.size() != obj.chunkLength(index)) return false;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i] != byteAt(obj.chunkOffset(index) + i)) return false;
  return true;
}

/// Whether chunk `index` is not cached, and a getOrFill() of it now fetches it from `src` (right bytes).
asio::awaitable<bool> missThenFetched(CacheThread& t, const ObjectId& obj, std::uint32_t index,
                                      const ChunkSourcePtr& src) {
  const ConstChunkPtr cached = co_await t.lookup(obj, index);
  if (cached) co_return false;
  CacheThread::ChunkRead read = co_await t.getOrFill(obj, index, src);
  if (read.status != Status::Filling) co_return false;
  const std::string got = co_await readAll(read, obj.chunkLength(index));
  co_return rightBytes(obj, index, got);
}

/// Waits until no fill is in flight (the last one's insert finished).
asio::awaitable<void> settle(CacheThread& t) {
  for (int i = 0; i < 1000 && t.fillsInFlight() > 0; ++i) co_await sleepFor(kTick);
}

}  // namespace

#define STORES "[unit][cache][conformance]", RamOnly, DiskOnly, RamAndDisk

TEMPLATE_TEST_CASE("conformance: a filled chunk is a hit afterwards, fetched once", STORES) {
  const Behaviour b = GENERATE(Behaviour::Whole, Behaviour::Trickle);
  Engine<TestType> e;
  auto srcFake = std::make_shared<FakeSource>(b);
  const ChunkSourcePtr src = srcFake;
  const ObjectId obj = objectOf(3 * kChunk + 1000);  // the last chunk is short
  for (std::uint32_t i : {0u, 3u}) {
    e.run([&]() -> asio::awaitable<void> {
      CacheThread::ChunkRead first = co_await e.thread.getOrFill(obj, i, src);
      CHECK(first.status == Status::Filling);
      const std::string got = co_await readAll(first, obj.chunkLength(i));
      CHECK(rightBytes(obj, i, got));
      co_await settle(e.thread);
      CacheThread::ChunkRead again = co_await e.thread.getOrFill(obj, i, src);
      CHECK(again.status == Status::Hit);
      CHECK(again.tier != CacheThread::Tier::None);
      const std::string hit = co_await readAll(again, obj.chunkLength(i));
      CHECK(rightBytes(obj, i, hit));
      e.thread.countServed(again, hit.size());
    });
  }
  CHECK(srcFake->fetches == 2);
  CHECK(e.cache.stats().fillsStarted == 2);
  CHECK(e.cache.stats().bytesFromBackend == obj.chunkLength(0) + obj.chunkLength(3));
  CHECK(e.cache.stats().bytesFromCache == obj.chunkLength(0) + obj.chunkLength(3));
  CHECK(e.thread.chunksOnHand(obj, 0, 3) == 2);
  CHECK(e.thread.chunksOnHand(obj, 1, 2) == 0);
  CHECK(e.thread.chunksOnHand(obj, 3, 2) == 0);  // an empty range
}

TEMPLATE_TEST_CASE("conformance: concurrent readers of one chunk share one fetch", STORES) {
  Engine<TestType> e;
  auto srcFake = std::make_shared<FakeSource>(Behaviour::Trickle);
  const ChunkSourcePtr src = srcFake;
  const ObjectId obj = objectOf(2 * kChunk);
  constexpr int kReaders = 8;
  std::atomic<int> good{0};
  e.run([&]() -> asio::awaitable<void> {
    for (int r = 0; r < kReaders; ++r)
      asio::co_spawn(e.ioc, [&]() -> asio::awaitable<void> {
        CacheThread::ChunkRead read = co_await e.thread.getOrFill(obj, 1, src);
        const std::string got = co_await readAll(read, obj.chunkLength(1));
        if (rightBytes(obj, 1, got)) good.fetch_add(1);
      }, asio::detached);
    co_return;
  });
  CHECK(good == kReaders);
  CHECK(srcFake->fetches == 1);
  CHECK(e.cache.stats().fillWaits == kReaders - 1);
}

TEMPLATE_TEST_CASE("conformance: readers on two threads share one fetch", STORES) {
  Engine<TestType> e;
  asio::io_context other{1};
  CacheThread otherThread(e.cache, other.get_executor());
  auto srcFake = std::make_shared<FakeSource>(Behaviour::Trickle);
  const ChunkSourcePtr src = srcFake;
  const ObjectId obj = objectOf(kChunk);
  auto reader = [&](CacheThread& t) -> asio::awaitable<std::string> {
    CacheThread::ChunkRead read = co_await t.getOrFill(obj, 0, src);
    co_return co_await readAll(read, obj.chunkLength(0));
  };
  auto a = asio::co_spawn(e.ioc, reader(e.thread), asio::use_future);
  auto b = asio::co_spawn(other, reader(otherThread), asio::use_future);
  std::thread t2([&] { other.run(); });
  e.ioc.run();
  t2.join();
  CHECK(rightBytes(obj, 0, a.get()));
  CHECK(rightBytes(obj, 0, b.get()));
  CHECK(srcFake->fetches == 1);
}

TEMPLATE_TEST_CASE("conformance: a failed fill is never a hit; asking again fetches again", STORES) {
  const Behaviour b = GENERATE(Behaviour::Fail, Behaviour::ShortOk, Behaviour::Change, Behaviour::OtherLength);
  Engine<TestType> e;
  auto badFake = std::make_shared<FakeSource>(b);
  const ChunkSourcePtr bad = badFake;
  auto goodFake = std::make_shared<FakeSource>(Behaviour::Whole);
  const ChunkSourcePtr good = goodFake;
  const ObjectId obj = objectOf(2 * kChunk);
  const std::uint64_t epoch = e.cache.metaEpoch(obj.metaKey());
  e.run([&]() -> asio::awaitable<void> {
    CacheThread::ChunkRead read = co_await e.thread.getOrFill(obj, 1, bad);
    REQUIRE(read.status == Status::Filling);
    const std::string got = co_await readAll(read, obj.chunkLength(1));
    CHECK(got.empty());  // never the whole chunk: readers stop where the bytes stopped
    CHECK(read.fill->state() == Fill::State::Failed);
    co_await settle(e.thread);
    CHECK(e.thread.chunksOnHand(obj, 0, 1) == 0);
    const bool retried = co_await missThenFetched(e.thread, obj, 1, good);
    CHECK(retried);
  });
  CHECK(badFake->fetches == 1);
  CHECK(goodFake->fetches == 1);
  const bool changed = b == Behaviour::Change || b == Behaviour::OtherLength;
  CHECK((e.cache.metaEpoch(obj.metaKey()) != epoch) == changed);  // metadata invalidated
  CHECK(e.cache.stats().lengthErrors == (b == Behaviour::OtherLength ? 1u : 0u));
}

TEMPLATE_TEST_CASE("conformance: a reader expecting another length never gets the bytes", STORES) {
  Engine<TestType> e;
  auto srcFake = std::make_shared<FakeSource>(Behaviour::Trickle);
  const ChunkSourcePtr src = srcFake;
  const ObjectId obj = objectOf(2 * kChunk);
  ObjectId odd = obj;  // the same chunk key, cut otherwise: chunk 0 would be twice as long
  odd.chunkSize = 2 * kChunk;
  const std::uint64_t epoch = e.cache.metaEpoch(obj.metaKey());
  e.run([&]() -> asio::awaitable<void> {
    CacheThread::ChunkRead first = co_await e.thread.getOrFill(obj, 0, src);
    REQUIRE(first.status == Status::Filling);
    CacheThread::ChunkRead other = co_await e.thread.getOrFill(odd, 0, src);
    CHECK(other.status == Status::Changed);  // a fill of another length is under way
    CHECK_FALSE(other.fill);
    const auto r3 = co_await readAll(first, obj.chunkLength(0));
    CHECK(rightBytes(obj, 0, r3));
    co_await settle(e.thread);
    const auto asOther = co_await e.thread.lookup(odd, 0);
    CHECK_FALSE(asOther);  // cached at one length, never served as another
  });
  CHECK(srcFake->fetches == 1);
  CHECK(e.cache.metaEpoch(obj.metaKey()) != epoch);
  CHECK(e.cache.stats().lengthErrors >= 2);
  // A chunk offered at another length than its index implies is refused.
  e.run([&]() -> asio::awaitable<void> {
    const std::string shortBytes(100, 'x');
    const ObjectId e2 = objectOf(3 * kChunk, "\"e2\"");
    co_await e.thread.insert(e2, 0, shortBytes);
    const auto r4 = co_await e.thread.lookup(e2, 0);
    CHECK_FALSE(r4);
  });
  CHECK(e.cache.stats().insertsRejected == 1);
}

TEMPLATE_TEST_CASE("conformance: removal, write-through insert and read-ahead", STORES) {
  Engine<TestType> e;
  auto srcFake = std::make_shared<FakeSource>(Behaviour::Trickle);
  const ChunkSourcePtr src = srcFake;
  const ObjectId obj = objectOf(4 * kChunk);
  e.run([&]() -> asio::awaitable<void> {
    // Read-ahead: fills start in the background, within the budget.
    CHECK(e.thread.prefetch(obj, 0, src, 1));
    CHECK_FALSE(e.thread.prefetch(obj, 1, src, 1));  // one fill in flight already: over budget
    CHECK_FALSE(e.thread.prefetch(obj, 0, src));     // in flight already
    co_await settle(e.thread);
    CHECK(e.thread.chunksOnHand(obj, 0, 3) == 1);
    CHECK_FALSE(e.thread.prefetch(obj, 0, src));  // cached
    // Write-through: bytes the caller has become a chunk.
    std::string bytes(static_cast<std::size_t>(kChunk), '\0');
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = byteAt(obj.chunkOffset(2) + i);
    co_await e.thread.insert(obj, 2, bytes);
    CHECK(e.thread.chunksOnHand(obj, 0, 3) == 2);
    CacheThread::ChunkRead hit = co_await e.thread.getOrFill(obj, 2, src);
    CHECK(hit.status == Status::Hit);
    // Removal: gone from every tier; the next read fetches it again.
    e.thread.remove(obj, 0);
    e.thread.remove(obj, 2);
    CHECK(e.thread.chunksOnHand(obj, 0, 3) == 0);
    const bool refetched = co_await missThenFetched(e.thread, obj, 0, src);
    CHECK(refetched);
  });
  CHECK(srcFake->fetches == 2);
}

/// A peer cache as a source: the whole chunk, counted as a peer's bytes, of a chunk another node owns.
class BorrowedSource final : public ChunkSource {
 public:
  std::atomic<int> fetches{0};
  asio::awaitable<FetchOutcome> fetch(const ChunkRequest& req, ChunkSink& sink) override {
    fetches.fetch_add(1);
    for (std::uint64_t i = 0; i < req.length; ++i) sink.data()[i] = byteAt(req.offset + i);
    sink.advance(static_cast<std::size_t>(req.length));
    sink.notePeerBytes(req.length);
    sink.markBorrowed();
    co_return FetchOutcome::Ok;
  }
};

TEST_CASE("a borrowed chunk goes to disk only once it is read again; its bytes count as a peer's",
          "[unit][cache]") {
  Engine<DiskOnly> e;
  auto srcFake = std::make_shared<BorrowedSource>();
  const ChunkSourcePtr src = srcFake;
  const ObjectId obj = objectOf(2 * kChunk);
  auto readOnce = [&]() -> asio::awaitable<Status> {
    CacheThread::ChunkRead r = co_await e.thread.getOrFill(obj, 1, src);
    const std::string got = co_await readAll(r, obj.chunkLength(1));
    CHECK(rightBytes(obj, 1, got));
    co_await settle(e.thread);
    co_return r.status;
  };
  // First sight: served, not kept (the owner keeps it).
  CHECK(e.run([&] { return readOnce(); }) == Status::Filling);
  CHECK(e.cache.stats().borrowedSkipped == 1);
  CHECK(e.cache.stats().bytesFromPeers == kChunk);
  CHECK(e.cache.stats().bytesFromBackend == 0);
  // Read again: the sketch has seen it twice, so this fill's chunk is kept; the third read is a hit.
  CHECK(e.run([&] { return readOnce(); }) == Status::Filling);
  CHECK(e.run([&] { return readOnce(); }) == Status::Hit);
  CHECK(srcFake->fetches == 2);
  CHECK(e.cache.stats().borrowedSkipped == 1);
  CHECK(e.cache.stats().bytesFromPeers == 2 * kChunk);
}

TEST_CASE("object identity: chunk and metadata keys", "[unit][cache]") {
  ObjectId a = objectOf(10 * kChunk);
  ObjectId b = a;
  b.etag = "\"e2\"";
  ObjectId c = a;
  c.size += 1;
  ObjectId v = a;
  v.versionId = "v1";
  CHECK(a.chunkKey(0) != a.chunkKey(1));
  CHECK(a.chunkKey(0) != b.chunkKey(0));  // another ETag
  CHECK(a.chunkKey(0) != c.chunkKey(0));  // same ETag, another size
  CHECK(a.chunkKey(0) != v.chunkKey(0));
  CHECK(a.metaKey() == b.metaKey());      // metadata is per key (and version), not per ETag
  CHECK(a.metaKey() != v.metaKey());
  CHECK(c.chunkCount() == 11);
  CHECK(c.chunkLength(10) == 1);
  // The byte forms stay what they were (entries on disk from before are found again).
  CHECK(a.chunkKey(3) == encodeKey({"http://origin", "bucket", "dir/obj", "\"e1\"#" + std::to_string(10 * kChunk), 3}));
  CHECK(v.metaKey() == encodeKey({"http://origin", "bucket", "dir/obj", "version:v1", kMetaIndex}));
}

TEST_CASE("RAM tier: striped when large, one LRU when small", "[unit][cache]") {
  CHECK(RamTier(8 << 20, 1 << 20).stripes() == 1);
  CHECK(RamTier(1ull << 30, 4 << 20).stripes() == 16);
  RamTier ram(64ull << 20, 64 << 10);
  CHECK(ram.stripes() > 1);
  std::uint64_t total = 0;
  for (int i = 0; i < 200; ++i) {
    const ObjectId obj = objectOf(200 * kChunk);
    auto c = std::make_shared<Chunk>(obj.chunkKey(i), 1000);
    c->seal();
    if (ram.put(c->keyHash(), c)) total += c->entrySize();
  }
  CHECK(ram.size() == 200);
  CHECK(ram.bytes() == total);
  CHECK(ram.bytes() <= ram.capacity());
}
