// The cache engine end to end on real files through io_uring: entries round-trip through the disk tier,
// a flipped byte is caught by the checksum (dropped, counted, reported as a miss), a failing device takes
// its directory out of service without errors to the caller, a restart (clean or not) finds the entries
// again, and a torn journal tail is ignored. Plus the entry format and one-downloader fills.

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>
#include <thread>

#include "cache/chunk_cache.h"
#include "support/temp_dir.h"

using namespace granary::cache;
namespace asio = boost::asio;

namespace {

struct TempDir : granary::test::TempDir {
  TempDir() : granary::test::TempDir("granary-cache-test") {}
};

ConstChunkPtr makeChunk(const std::string& key, std::size_t size, std::uint32_t seed) {
  auto c = std::make_shared<Chunk>(key, size);
  std::mt19937 rng(seed);
  for (std::size_t i = 0; i < size; ++i) c->value()[i] = static_cast<char>(rng());
  c->seal();
  return c;
}

std::string keyOf(int i) { return encodeKey({"http://origin", "bucket", "obj" + std::to_string(i), "\"etag\"", 0}); }

CacheOptions diskOptions(const TempDir& d) {
  CacheOptions o;
  o.dirs = {{d.path.string(), 64 << 20}};
  o.chunkSize = 1 << 20;
  return o;
}

/// Runs one coroutine on a fresh io_context and returns its result.
template <class F>
auto run(F&& f) {
  asio::io_context ioc(1);
  auto fut = asio::co_spawn(ioc, f(ioc), asio::use_future);
  ioc.run();
  return fut.get();
}

}  // namespace

TEST_CASE("chunk-sized buffers are reused by the thread that freed them, within its bounds", "[unit][cache]") {
  // A thread of its own: it starts with nothing kept. (CHECK only: a REQUIRE throwing there would end the
  // process without a report.)
  std::thread([] {
    const std::size_t big = (4u << 20) + kBlockSize;
    CHECK(recycledBufferBytesForTest() == 0);
    if (!buffersRecycled()) {  // AddressSanitizer builds: it must see every free
      { AlignedBuffer a(big); }
      CHECK(recycledBufferBytesForTest() == 0);
      return;
    }
    char* first = nullptr;
    {
      AlignedBuffer a(big);
      first = a.data();
      std::memset(a.data(), 0x5a, a.size());  // what a recycled buffer holds: another entry's bytes
    }
    CHECK(recycledBufferBytesForTest() == big);
    CHECK(recycledBufferBytesTotal() >= big);
    {
      AlignedBuffer other(big + kBlockSize);  // another size: a buffer of its own, the kept one stays
      CHECK(recycledBufferBytesForTest() == big);
      // The same size: the kept buffer, with its stale bytes. A chunk built in it has a zeroed header and
      // zeroed padding, and seals and verifies like one built in fresh memory.
      const std::string key = keyOf(7);
      auto c = std::make_shared<Chunk>(key, std::size_t{4} << 20);
      CHECK(c->entryData() == first);
      CHECK(c->entrySize() == big);
      CHECK(recycledBufferBytesForTest() == 0);
      bool zeroed = std::all_of(c->entryData(), c->entryData() + kEntryHeaderSize, [](char b) { return b == 0; });
      const std::size_t used = kEntryHeaderSize + key.size() + c->valueSize();
      zeroed = zeroed && std::all_of(c->entryData() + used, c->entryData() + c->entrySize(), [](char b) { return b == 0; });
      CHECK(zeroed);
      std::memset(c->value(), 0x11, c->valueSize());
      c->seal();
      AlignedBuffer copy(c->entrySize());
      CHECK(copy.data() != first);
      std::memcpy(copy.data(), c->entryData(), c->entrySize());
      CHECK(Chunk(std::move(copy)).verify(key) == EntryStatus::Ok);
    }
    // Kept now: the chunk's buffer, `copy` (same size) and `other`.
    CHECK(recycledBufferBytesForTest() == 3 * big + kBlockSize);
    {  // sizes that never come back (objects' last chunks) push out the oldest, never the newest
      std::vector<AlignedBuffer> odd;
      for (std::size_t i = 0; i < 20; ++i) odd.emplace_back((1u << 20) + i * kBlockSize);
    }
    CHECK(recycledBufferBytesForTest() <= (48u << 20));
    // Kept: the newest 16 of the odd sizes (the 4 oldest and the three from before went first).
    const std::size_t oddKept = 16 * (1u << 20) + (4 + 19) * 16 / 2 * kBlockSize;
    CHECK(recycledBufferBytesForTest() == oddKept);
    char* last = nullptr;
    {
      AlignedBuffer a(big + 2 * kBlockSize);  // a size not kept before: fresh
      last = a.data();
    }
    // Full (16 buffers): the oldest odd one (1 MiB + 4 blocks) made room for it.
    CHECK(recycledBufferBytesForTest() == oddKept - ((1u << 20) + 4 * kBlockSize) + big + 2 * kBlockSize);
    {
      AlignedBuffer again(big + 2 * kBlockSize);  // the buffer freed last is still there
      CHECK(again.data() == last);
    }
    {
      const std::size_t before = recycledBufferBytesForTest();
      { AlignedBuffer small(64 * 1024); }  // below 128 KiB: left to malloc
      CHECK(recycledBufferBytesForTest() == before);
    }
    CHECK(recycledBufferBytesTotal() <= (256u << 20));
  }).join();
}

TEST_CASE("entry format: seal and verify, any flipped byte or another key is refused", "[unit][cache]") {
  const std::string key = keyOf(1);
  auto c = makeChunk(key, 10000, 1);
  CHECK(c->entrySize() % kBlockSize == 0);
  auto copy = [&](std::size_t flip) {
    AlignedBuffer b(c->entrySize());
    std::memcpy(b.data(), c->entryData(), c->entrySize());
    if (flip != SIZE_MAX) b.data()[flip] ^= 0x40;
    return Chunk(std::move(b));
  };
  CHECK(copy(SIZE_MAX).verify(key) == EntryStatus::Ok);
  CHECK(copy(SIZE_MAX).verify(keyOf(2)) == EntryStatus::KeyMismatch);
  CHECK(copy(3).verify(key) == EntryStatus::Corrupt);                            // magic
  CHECK(copy(kEntryHeaderSize + 2).verify(key) == EntryStatus::Corrupt);         // key bytes
  CHECK(copy(kEntryHeaderSize + key.size() + 5000).verify(key) == EntryStatus::Corrupt);  // value
  // The value's checksum is XXH3-64 whichever code computes it (entries written before stay readable).
  std::string big(3 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + (i >> 12));
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{240}, std::size_t{4097}, big.size()})
    CHECK(valueSum(big.data(), n) == XXH3_64bits(big.data(), n));
  // Keys are unambiguous: moving a byte between fields changes the encoding.
  CHECK(encodeKey({"a", "bc", "d", "e", 1}) != encodeKey({"ab", "c", "d", "e", 1}));
  CHECK(encodeKey({"a", "b", "c", "e", 1}) != encodeKey({"a", "b", "c", "e", 2}));
}

TEST_CASE("disk tier: insert, then a hit read back through io_uring", "[unit][cache]") {
  TempDir dir;
  ChunkCache cache(diskOptions(dir));
  const auto chunk = makeChunk(keyOf(1), 700000, 7);
  auto got = run([&](asio::io_context& ioc) -> asio::awaitable<ConstChunkPtr> {
    CacheThread t(cache, ioc.get_executor());
    co_await t.insert(chunk, chunk->valueSize());
    co_return co_await t.lookup(keyOf(1), hashBytes(keyOf(1)), chunk->valueSize());
  });
  REQUIRE(got);
  REQUIRE(got->valueSize() == chunk->valueSize());
  CHECK(std::memcmp(got->value(), chunk->value(), chunk->valueSize()) == 0);
  CHECK(cache.stats().diskHits == 1);
  auto miss = run([&](asio::io_context& ioc) -> asio::awaitable<ConstChunkPtr> {
    CacheThread t(cache, ioc.get_executor());
    co_return co_await t.lookup(keyOf(2), hashBytes(keyOf(2)), 700000);
  });
  CHECK_FALSE(miss);
}

TEST_CASE("disk tier: a flipped byte on disk is a counted miss, never bad bytes", "[unit][cache]") {
  TempDir dir;
  ChunkCache cache(diskOptions(dir));
  const auto chunk = makeChunk(keyOf(1), 300000, 3);
  run([&](asio::io_context& ioc) -> asio::awaitable<void> {
    CacheThread t(cache, ioc.get_executor());
    co_await t.insert(chunk, chunk->valueSize());
  });
  const auto loc = cache.disk()->index().find(hashBytes(keyOf(1)));
  REQUIRE(loc);
  {
    const int fd = ::open((dir.path / "granary-cache.data").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    const off_t at = static_cast<off_t>(std::uint64_t{loc->block} * kBlockSize + kEntryHeaderSize + 200000);
    char b = 0;
    REQUIRE(::pread(fd, &b, 1, at) == 1);
    b ^= 0x01;
    REQUIRE(::pwrite(fd, &b, 1, at) == 1);
    ::close(fd);
  }
  auto got = run([&](asio::io_context& ioc) -> asio::awaitable<ConstChunkPtr> {
    CacheThread t(cache, ioc.get_executor());
    co_return co_await t.lookup(keyOf(1), hashBytes(keyOf(1)), 300000);
  });
  CHECK_FALSE(got);
  CHECK(cache.stats().checksumErrors == 1);
  CHECK_FALSE(cache.disk()->index().find(hashBytes(keyOf(1))));  // dropped
}

TEST_CASE("disk tier: a failing device takes its directory out of service, callers see misses", "[unit][cache]") {
  TempDir dir;
  CacheOptions o = diskOptions(dir);
  // Writes to /dev/full fail with ENOSPC, as a full or dying disk would.
  o.openFile = [](const std::string&, int flags) { return ::open("/dev/full", (flags & ~(O_CREAT | O_DIRECT))); };
  ChunkCache cache(std::move(o));
  REQUIRE(cache.disk());
  auto got = run([&](asio::io_context& ioc) -> asio::awaitable<ConstChunkPtr> {
    CacheThread t(cache, ioc.get_executor());
    co_await t.insert(makeChunk(keyOf(1), 100000, 1), 100000);
    co_return co_await t.lookup(keyOf(1), hashBytes(keyOf(1)), 100000);
  });
  CHECK_FALSE(got);
  CHECK(cache.stats().writeErrors == 1);
  CHECK(cache.disk()->dirFailures() == 1);
  CHECK(cache.disk()->status()[0].failed);
  CHECK_THAT(cache.disk()->status()[0].why, Catch::Contains("write failed"));
}

TEST_CASE("disk tier: a file system that refuses O_DIRECT gets the page cache and a warning", "[unit][cache]") {
  for (const bool askDirect : {true, false}) {
    TempDir dir;
    CacheOptions o = diskOptions(dir);
    o.directIo = askDirect;
    o.openFile = [](const std::string& path, int flags) {  // as tmpfs did before Linux 6.6
      if (flags & O_DIRECT) return errno = EINVAL, -1;
      return ::open(path.c_str(), flags, 0600);
    };
    std::ostringstream log;
    struct RestoreLogger {  // (also when a REQUIRE below throws: the sink's stream dies with this scope)
      std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
      ~RestoreLogger() { spdlog::set_default_logger(previous); }
    } restore;
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::ostream_sink_mt>(log)));
    {
      ChunkCache cache(std::move(o));
      REQUIRE(cache.disk());
      CHECK_FALSE(cache.disk()->status()[0].directIo);
      CHECK_FALSE(cache.disk()->status()[0].failed);
      CHECK_THAT(cache.describe(), Catch::Contains("page cache"));
    }
    // Only where O_DIRECT was asked for is its refusal news.
    CHECK((log.str().find("refused O_DIRECT") != std::string::npos) == askDirect);
  }
}

TEST_CASE("disk tier: entries survive a restart, clean or after a crash", "[unit][cache]") {
  TempDir dir;
  const int n = 20;
  {
    ChunkCache cache(diskOptions(dir));
    run([&](asio::io_context& ioc) -> asio::awaitable<void> {
      CacheThread t(cache, ioc.get_executor());
      for (int i = 0; i < n; ++i) co_await t.insert(makeChunk(keyOf(i), 200000 + i, i), 200000 + i);
    });
    // No close(): the destructor's journal flush is all a crash would lack; simulate the crash by
    // copying the journal as the kernel holds it right now.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the journal writer's batch interval
    std::filesystem::copy_file(dir.path / "granary-cache.journal", dir.path / "crash.journal");
  }
  auto readAll = [&](ChunkCache& cache) {
    return run([&](asio::io_context& ioc) -> asio::awaitable<int> {
      CacheThread t(cache, ioc.get_executor());
      int ok = 0;
      for (int i = 0; i < n; ++i) {
        auto c = co_await t.lookup(keyOf(i), hashBytes(keyOf(i)), 200000 + i);
        auto want = makeChunk(keyOf(i), 200000 + i, i);
        ok += c && c->valueSize() == want->valueSize() && std::memcmp(c->value(), want->value(), c->valueSize()) == 0;
      }
      co_return ok;
    });
  };
  {
    ChunkCache cache(diskOptions(dir));  // after a clean stop
    CHECK(cache.disk()->status()[0].loadedEntries == std::size_t(n));
    CHECK(readAll(cache) == n);
  }
  // After a crash: the journal as it was, plus a torn record at its tail.
  std::filesystem::copy_file(dir.path / "crash.journal", dir.path / "granary-cache.journal",
                             std::filesystem::copy_options::overwrite_existing);
  {
    std::FILE* f = std::fopen((dir.path / "granary-cache.journal").c_str(), "ab");
    std::fwrite("torn-record-bytes", 1, 17, f);
    std::fclose(f);
  }
  ChunkCache cache(diskOptions(dir));
  CHECK(readAll(cache) == n);
}

TEST_CASE("a chunk of another length than its index implies is never served, nor cached", "[unit][cache]") {
  // An origin that rewrites an object under the same ETag with another size (s3rver's non-atomic
  // overwrite) can leave a chunk whose length does not match what the new size implies.
  TempDir dir;
  CacheOptions o = diskOptions(dir);
  o.ramBytes = 8 << 20;
  ChunkCache cache(std::move(o));
  const auto chunk = makeChunk(keyOf(1), 300000, 3);
  auto got = run([&](asio::io_context& ioc) -> asio::awaitable<std::pair<ConstChunkPtr, ConstChunkPtr>> {
    CacheThread t(cache, ioc.get_executor());
    co_await t.insert(chunk, chunk->valueSize());
    ConstChunkPtr wrong = co_await t.lookup(keyOf(1), hashBytes(keyOf(1)), 400000);  // the object grew
    ConstChunkPtr after = co_await t.lookup(keyOf(1), hashBytes(keyOf(1)), 300000);  // dropped from both tiers
    co_return std::pair{wrong, after};
  });
  CHECK_FALSE(got.first);
  CHECK_FALSE(got.second);
  CHECK(cache.stats().lengthErrors == 1);
  CHECK_FALSE(cache.couldExist(hashBytes(keyOf(1))));
  // Straight from disk (no RAM copy) too, and a short chunk offered for insertion is refused.
  TempDir dir2;
  ChunkCache diskOnly(diskOptions(dir2));
  auto fromDisk = run([&](asio::io_context& ioc) -> asio::awaitable<std::pair<ConstChunkPtr, ConstChunkPtr>> {
    CacheThread t(diskOnly, ioc.get_executor());
    co_await t.insert(makeChunk(keyOf(2), 100000, 2), 100000);
    ConstChunkPtr shrunk = co_await t.lookup(keyOf(2), hashBytes(keyOf(2)), 99999);
    co_await t.insert(makeChunk(keyOf(3), 5000, 3), 65536);
    ConstChunkPtr refused = co_await t.lookup(keyOf(3), hashBytes(keyOf(3)), 5000);
    co_return std::pair{shrunk, refused};
  });
  CHECK_FALSE(fromDisk.first);
  CHECK_FALSE(fromDisk.second);
  CHECK(diskOnly.stats().lengthErrors == 2);
  CHECK(diskOnly.stats().insertsRejected == 1);
}

TEST_CASE("bucket epochs: a whole-bucket invalidation moves only that bucket's epoch", "[unit][cache]") {
  ChunkCache cache(CacheOptions{});
  const auto a0 = cache.bucketEpoch("be", "bucket-a");
  std::uint64_t others = 0;
  for (int i = 0; i < 50; ++i) others += cache.bucketEpoch("be", "other-" + std::to_string(i));
  cache.invalidateBucket("be", "bucket-a");
  CHECK(cache.bucketEpoch("be", "bucket-a") == a0 + 1);
  std::uint64_t after = 0;
  for (int i = 0; i < 50; ++i) after += cache.bucketEpoch("be", "other-" + std::to_string(i));
  CHECK(after <= others + 1);  // 256 slots: at most one of fifty others shares the bucket's slot, by chance
  CHECK(cache.stats().bucketInvalidations == 1);
}

TEST_CASE("RAM tier: bounded in bytes, a cold newcomer cannot flush hot chunks", "[unit][cache]") {
  RamTier ram(4 * (64 << 10) + 4 * kBlockSize, 64 << 10);
  for (int i = 0; i < 4; ++i) {
    const auto c = makeChunk(keyOf(i), 64 << 10, i);
    for (int r = 0; r < 3; ++r) ram.recordAccess(c->keyHash());
    CHECK(ram.put(c->keyHash(), c));
  }
  CHECK(ram.bytes() <= ram.capacity());
  const auto cold = makeChunk(keyOf(99), 64 << 10, 99);
  ram.recordAccess(cold->keyHash());
  CHECK_FALSE(ram.put(cold->keyHash(), cold));
  for (int i = 0; i < 4; ++i) CHECK(ram.get(hashBytes(keyOf(i)), keyOf(i)));
  CHECK_FALSE(ram.get(hashBytes(keyOf(0)), keyOf(1)));  // full key compared, not only the hash
}

TEST_CASE("fills: one downloader, readers on other threads see bytes as they arrive", "[unit][cache]") {
  FillTable table;
  const std::string key = keyOf(1);
  auto [fill, leader] = table.acquire(key, [&] { return std::make_shared<Chunk>(key, 1000); });
  CHECK(leader);
  auto [same, second] = table.acquire(key, [&] { return std::make_shared<Chunk>(key, 1000); });
  CHECK_FALSE(second);
  CHECK(same == fill);
  std::vector<std::size_t> seen;
  asio::io_context reader(1);
  auto done = asio::co_spawn(reader, [&]() -> asio::awaitable<void> {
    std::size_t pos = 0;
    while (pos < 1000 && fill->state() != Fill::State::Failed) {
      co_await fill->waitPast(pos, std::chrono::seconds(5));
      if (fill->ready() > pos) seen.push_back(pos = fill->ready());
    }
  }, asio::use_future);
  std::thread rt([&] { reader.run(); });
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::memset(fill->chunk().value() + i * 250, 'a' + i, 250);
    fill->advance(250);
  }
  fill->finish(true);
  rt.join();
  done.get();
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back() == 1000);
  CHECK(seen.size() >= 2);  // progress arrived in steps, not only at the end
  table.release(key, fill.get());
  CHECK(table.size() == 0);
}

TEST_CASE("metadata: in RAM at once, on disk in the background, never brought back after an invalidation",
          "[unit][cache]") {
  TempDir dir;
  auto meta = [](const std::string& etag) {
    auto m = std::make_shared<ObjectMeta>();
    m->size = 5;
    m->etag = etag;
    return std::shared_ptr<const ObjectMeta>(std::move(m));
  };
  auto keyFor = [](const std::string& k) { return encodeKey({"http://origin", "bucket", k, "", kMetaIndex}); };
  const std::string a = keyFor("a"), b = keyFor("b"), c = keyFor("c");
  {
    ChunkCache cache(diskOptions(dir));
    asio::io_context ioc(1);
    CacheThread t(cache, ioc.get_executor());  // (outlives the background writes: ioc.run() ends after them)
    bool checked = false;
    asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
      // (named records: no class temporaries in a co_await, GCC 12)
      const auto a1 = meta("\"a1\""), b1 = meta("\"b1\""), c1 = meta("\"c1\""), c2 = meta("\"c2\"");
      co_await t.storeMeta(a, a1, cache.metaEpoch(a));
      // The request that fetched it goes on at once: published in RAM, its disk copy not written yet.
      CHECK(cache.metaInRam(a) == a1);
      CHECK(!cache.disk()->index().find(hashBytes(a)).has_value());
      // b is invalidated while its disk copy is on its way; c gets a newer record meanwhile.
      co_await t.storeMeta(b, b1, cache.metaEpoch(b));
      cache.invalidateMeta(b);
      co_await t.storeMeta(c, c1, cache.metaEpoch(c));
      co_await t.storeMeta(c, c2, cache.metaEpoch(c));
      checked = true;
    }, asio::detached);
    ioc.run();
    CHECK(checked);
    CHECK(cache.disk()->index().find(hashBytes(a)).has_value());
    CHECK(!cache.disk()->index().find(hashBytes(b)).has_value());
    cache.close();
  }
  ChunkCache cache(diskOptions(dir));  // after a restart: only what the disk holds
  run([&](asio::io_context& ioc) -> asio::awaitable<void> {
    CacheThread t(cache, ioc.get_executor());
    const auto ma = co_await t.lookupMeta(a);
    REQUIRE(ma);
    CHECK(ma->etag == "\"a1\"");
    CHECK(ma->fromDisk);
    const auto mb = co_await t.lookupMeta(b);
    CHECK(!mb);
    const auto mc = co_await t.lookupMeta(c);
    REQUIRE(mc);
    CHECK(mc->etag == "\"c2\"");
  });
}
