// W-TinyLFU against the cache issue's acceptance traces, with a plain LRU as the reference:
// a cyclic scan (an AI training epoch) over a data set twice the cache must keep >= 40% hits in steady
// state, where LRU keeps ~0%; on Zipf(0.9) the miss ratio must be no worse than LRU's. Seeded, exact.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <list>
#include <random>
#include <unordered_map>

#include "cache/eviction_policy.h"
#include "support/cache_traces.h"

using granary::cache::TinyLfuPolicy;
using granary::testing::Lru;

namespace {


/// Plays one access the way the cache will: count it, hit or fill.
bool play(TinyLfuPolicy& p, std::uint64_t key) {
  p.recordAccess(key);
  if (p.touch(key)) return true;
  std::vector<std::uint64_t> evicted;
  p.insert(key, evicted);
  return false;
}

std::uint64_t keyOf(std::uint64_t i) { return granary::testing::traceKey(i); }

struct ScanResult {
  double tinyLfu = 0, lru = 0;
};

ScanResult cyclicScan(std::size_t objects, std::size_t cache, int epochs, bool shuffle) {
  TinyLfuPolicy policy(cache);
  Lru lru(cache);
  std::mt19937_64 rng(7);
  std::vector<std::uint64_t> order(objects);
  for (std::size_t i = 0; i < objects; ++i) order[i] = keyOf(i);
  std::size_t hits = 0, lruHits = 0, counted = 0;
  for (int e = 0; e < epochs; ++e) {
    if (shuffle) std::shuffle(order.begin(), order.end(), rng);
    for (auto k : order) {
      const bool h = play(policy, k);
      const bool lh = lru.access(k);
      REQUIRE(policy.size() <= cache);
      if (e >= 2) {  // steady state: after the first two epochs
        hits += h;
        lruHits += lh;
        ++counted;
      }
    }
  }
  return {double(hits) / counted, double(lruHits) / counted};
}

}  // namespace

TEST_CASE("policy basics: fill, hit, erase, never over capacity", "[unit][cache]") {
  TinyLfuPolicy p(100);
  for (std::uint64_t i = 0; i < 100; ++i) CHECK_FALSE(play(p, keyOf(i)));
  CHECK(p.size() == 100);
  for (std::uint64_t i = 0; i < 100; ++i) CHECK(p.contains(keyOf(i)));
  CHECK(play(p, keyOf(5)));
  CHECK(p.erase(keyOf(5)));
  CHECK_FALSE(p.contains(keyOf(5)));
  CHECK_FALSE(p.erase(keyOf(5)));
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100000; ++i) {
    play(p, keyOf(rng() % 1000));
    REQUIRE(p.size() <= 100);
  }
}

TEST_CASE("insert reports what the cache must drop, the rejected newcomer included", "[unit][cache]") {
  TinyLfuPolicy p(10);
  std::vector<std::uint64_t> evicted;
  for (std::uint64_t i = 0; i < 10; ++i) {
    for (int r = 0; r < 5; ++r) p.recordAccess(keyOf(i));  // popular incumbents
    p.insert(keyOf(i), evicted);
  }
  CHECK(evicted.empty());
  p.recordAccess(keyOf(100));
  p.insert(keyOf(100), evicted);  // a one-hit newcomer cannot displace them
  REQUIRE(evicted.size() == 1);
  CHECK_FALSE(p.contains(evicted[0]));
  CHECK(p.size() == 10);
}

TEST_CASE("cyclic scan over twice the cache keeps >= 40% hits, while LRU keeps none", "[unit][cache][trace]") {
  auto same = cyclicScan(2000, 1000, 10, false);
  INFO("same order: W-TinyLFU " << same.tinyLfu << ", LRU " << same.lru);
  CHECK(same.tinyLfu >= 0.40);
  CHECK(same.lru < 0.01);
  auto shuffled = cyclicScan(2000, 1000, 10, true);
  INFO("shuffled epochs: W-TinyLFU " << shuffled.tinyLfu << ", LRU " << shuffled.lru);
  CHECK(shuffled.tinyLfu >= 0.40);
  CHECK(shuffled.tinyLfu > shuffled.lru);
}

TEST_CASE("Zipf(0.9): miss ratio no worse than LRU's", "[unit][cache][trace]") {
  const std::size_t objects = 20000, cache = 1000, accesses = 400000;
  std::vector<double> cdf(objects);
  double sum = 0;
  for (std::size_t i = 0; i < objects; ++i) cdf[i] = (sum += 1.0 / std::pow(double(i + 1), 0.9));
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> u(0, sum);
  TinyLfuPolicy policy(cache);
  Lru lru(cache);
  std::size_t misses = 0, lruMisses = 0;
  for (std::size_t n = 0; n < accesses; ++n) {
    const auto rank = std::size_t(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    const auto k = keyOf(rank);
    misses += !play(policy, k);
    lruMisses += !lru.access(k);
  }
  const double ratio = double(misses) / accesses, lruRatio = double(lruMisses) / accesses;
  INFO("miss ratio: W-TinyLFU " << ratio << ", LRU " << lruRatio);
  CHECK(ratio <= lruRatio);
}
