// The disk tier's index and space manager, without I/O: capacity is never exceeded, a reclaimed region's
// entries disappear, writes in flight block reclaim, and the admission policy keeps a cyclic scan twice
// the cache at >= 40% hits (LRU: 0%) and a Zipf(0.9) miss ratio no worse than LRU's, on the very code
// that runs in production.

#include <catch2/catch.hpp>

#include "cache/disk_index.h"
#include "support/cache_traces.h"

using namespace granary::cache;
using granary::testing::cyclicTrace;
using granary::testing::Lru;
using granary::testing::traceKey;
using granary::testing::zipfTrace;

namespace {

constexpr std::uint64_t kRegion = 1 << 20;
constexpr std::uint64_t kEntry = 64 * 1024;  // 16 entries per region

DiskIndex makeIndex(std::uint32_t regions, std::size_t expected = 1024) {
  return DiskIndex({DirGeometry{kRegion, regions}}, expected);
}

/// One access as the cache plays it: count it; a hit, or a fill that is offered to the disk tier.
bool play(DiskIndex& idx, std::uint64_t h, std::uint64_t bytes = kEntry) {
  idx.recordAccess(h);
  if (idx.find(h)) return true;
  if (auto slot = idx.reserve(h, bytes)) idx.commit(*slot, h);
  return false;
}

struct Ratios {
  double granary, lru;
};

Ratios replay(const std::vector<std::uint64_t>& trace, std::uint32_t regions, std::size_t warmup) {
  DiskIndex idx = makeIndex(regions, regions * (kRegion / kEntry));
  Lru lru(regions * (kRegion / kEntry));  // the same bytes, in entries
  std::size_t hits = 0, lruHits = 0, n = 0;
  for (std::size_t i = 0; i < trace.size(); ++i) {
    const bool h = play(idx, trace[i]);
    const bool lh = lru.access(trace[i]);
    if (i >= warmup) {
      hits += h;
      lruHits += lh;
      ++n;
    }
  }
  return {double(hits) / n, double(lruHits) / n};
}

}  // namespace

TEST_CASE("disk index: reserve, commit, find, and space never exceeds the regions", "[unit][cache]") {
  DiskIndex idx = makeIndex(4);
  std::vector<IndexEvent> events;
  idx.setEventSink([&](const IndexEvent& e) { events.push_back(e); });
  auto slot = idx.reserve(traceKey(1), 5000);  // rounded up to 8 KiB
  REQUIRE(slot);
  CHECK(slot->size() == 8192);
  CHECK_FALSE(idx.find(traceKey(1)));  // not visible before its write completed
  idx.commit(*slot, traceKey(1));
  auto loc = idx.find(traceKey(1));
  REQUIRE(loc);
  CHECK(loc->block == slot->loc.block);
  REQUIRE(events.size() == 2);
  CHECK(events[0].kind == IndexEvent::Kind::Open);
  CHECK(events[1].kind == IndexEvent::Kind::Insert);
  CHECK_FALSE(idx.reserve(traceKey(2), kRegion + 1));  // larger than a region: never cached

  // Fill far past capacity with fresh keys and (while empty space remains) everything is admitted;
  // the bytes indexed never exceed the four regions.
  for (std::uint64_t i = 10; i < 1000; ++i) {
    play(idx, traceKey(i));
    REQUIRE(idx.stats().bytes <= 4 * kRegion);
  }
  CHECK(idx.stats().entries > 0);
}

TEST_CASE("disk index: reclaiming a region drops exactly its entries", "[unit][cache]") {
  DiskIndex idx = makeIndex(3);
  // Region 0 gets keys 0..15, region 1 16..31, region 2 32..47 (all admitted: free space).
  for (std::uint64_t i = 0; i < 48; ++i) REQUIRE_FALSE(play(idx, traceKey(i)));
  for (std::uint64_t i = 0; i < 48; ++i) REQUIRE(idx.find(traceKey(i)));
  // A newcomer accessed clearly more often than region 0's entries reclaims it.
  for (int r = 0; r < 5; ++r) idx.recordAccess(traceKey(100));
  auto slot = idx.reserve(traceKey(100), kEntry);
  REQUIRE(slot);
  CHECK(slot->region == 0);
  idx.commit(*slot, traceKey(100));
  for (std::uint64_t i = 0; i < 16; ++i) CHECK_FALSE(idx.find(traceKey(i)));
  for (std::uint64_t i = 16; i < 48; ++i) CHECK(idx.find(traceKey(i)));
  CHECK(idx.find(traceKey(100)));
  CHECK(idx.stats().regionsReclaimed == 1);
}

TEST_CASE("disk index: a one-hit newcomer cannot displace more popular entries", "[unit][cache]") {
  DiskIndex idx = makeIndex(3);
  for (std::uint64_t i = 0; i < 48; ++i) {
    for (int r = 0; r < 3; ++r) idx.recordAccess(traceKey(i));
    auto s = idx.reserve(traceKey(i), kEntry);
    REQUIRE(s);
    idx.commit(*s, traceKey(i));
  }
  idx.recordAccess(traceKey(500));
  CHECK_FALSE(idx.reserve(traceKey(500), kEntry));
  CHECK(idx.stats().rejected == 1);
  for (std::uint64_t i = 0; i < 48; ++i) CHECK(idx.find(traceKey(i)));
}

TEST_CASE("disk index: a region with a write in flight is not reclaimed", "[unit][cache]") {
  DiskIndex idx = makeIndex(3);
  auto pending = idx.reserve(traceKey(0), kEntry);  // region 0, never committed yet
  REQUIRE(pending);
  for (std::uint64_t i = 1; i < 48; ++i) play(idx, traceKey(i));
  for (int r = 0; r < 9; ++r) idx.recordAccess(traceKey(200));
  auto other = idx.reserve(traceKey(200), kEntry);  // region 0 is the coldest, but busy: region 1 goes
  REQUIRE(other);
  CHECK(other->region == 1);
  idx.commit(*other, traceKey(200));
  idx.commit(*pending, traceKey(0));
  CHECK(idx.find(traceKey(0)));
  CHECK(idx.find(traceKey(200)));
}

TEST_CASE("disk index: removeIfAt leaves a newer copy alone, failed directories read as misses", "[unit][cache]") {
  DiskIndex idx = makeIndex(4);
  play(idx, traceKey(1));
  const Location old = *idx.find(traceKey(1));
  auto again = idx.reserve(traceKey(1), kEntry);
  REQUIRE(again);
  idx.commit(*again, traceKey(1));
  CHECK_FALSE(idx.removeIfAt(traceKey(1), old));
  CHECK(idx.find(traceKey(1)));
  CHECK(idx.removeIfAt(traceKey(1), again->loc));
  CHECK_FALSE(idx.find(traceKey(1)));
  play(idx, traceKey(2));
  idx.failDir(0);
  CHECK_FALSE(idx.find(traceKey(2)));
  CHECK_FALSE(idx.reserve(traceKey(3), kEntry));
}

TEST_CASE("disk tier policy: cyclic scan over twice the cache keeps >= 40% hits, while LRU keeps none",
          "[unit][cache][trace]") {
  const std::uint32_t regions = 64;
  const std::size_t cacheEntries = regions * (kRegion / kEntry), objects = 2 * cacheEntries;
  for (bool shuffle : {false, true}) {
    const auto trace = cyclicTrace(objects, 10, shuffle);
    const Ratios r = replay(trace, regions, 2 * objects);
    INFO((shuffle ? "shuffled" : "same order") << ": Granary " << r.granary << ", LRU " << r.lru);
    CHECK(r.granary >= 0.40);
    CHECK(r.granary > r.lru);
  }
}

TEST_CASE("disk tier policy: Zipf(0.9) miss ratio no worse than LRU's", "[unit][cache][trace]") {
  const std::uint32_t regions = 64;  // 1,024 entries
  const auto trace = zipfTrace(20000, 400000);
  const Ratios r = replay(trace, regions, 0);
  INFO("miss ratio: Granary " << 1 - r.granary << ", LRU " << 1 - r.lru);
  CHECK(1 - r.granary <= 1 - r.lru);
}
