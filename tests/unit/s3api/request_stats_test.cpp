#include <catch2/catch.hpp>

#include "s3api/proxy_handler.h"
#include "s3api/request_stats.h"

using namespace granary::s3api;

TEST_CASE("request stats count by operation and status, cache outcome and bucket, and sum across threads") {
  RequestStats a, b;
  a.record("GetObject", 200, "data", "hit", 0, 100);
  a.record("GetObject", 200, "data", "miss", 0, 50);
  b.record("GetObject", 200, "data", "partial", 0, 10);
  b.record("PutObject", 403, "data", "", 7, 0);
  b.record("ListBuckets", 200, "", "", 0, 1);
  RequestStats::Snapshot s;
  a.addTo(s);
  b.addTo(s);
  CHECK(s.byOpStatus[{"GetObject", 200}] == 3);
  CHECK(s.byOpStatus[{"PutObject", 403}] == 1);
  CHECK(s.byCache["hit"] == 1);
  CHECK(s.byCache["miss"] == 1);
  CHECK(s.byCache["partial"] == 1);
  CHECK(s.byCache.count("") == 0);
  const auto& d = s.byBucket["data"];
  CHECK(d.requests == 4);
  CHECK(d.hits == 1);
  CHECK(d.misses == 1);
  CHECK(d.partial == 1);
  CHECK(d.bytesOut == 160);
  CHECK(d.bytesIn == 7);
  CHECK(s.byBucket.size() == 1);  // a request with no bucket is not a bucket's
  CHECK(s.bytesOut == 161);
}

TEST_CASE("request stats bound the buckets they track: names come from clients") {
  RequestStats r;
  for (std::size_t i = 0; i < RequestStats::kMaxBuckets + 50; ++i) r.record("HeadBucket", 404, "b" + std::to_string(i), "", 0, 0);
  RequestStats::Snapshot s;
  r.addTo(s);
  CHECK(s.byBucket.size() == RequestStats::kMaxBuckets + 1);
  CHECK(s.byBucket[std::string(RequestStats::kOtherBuckets)].requests == 50);
}

TEST_CASE("a rate limiter spaces reservations by bytes over the rate") {
  RateLimiter unlimited(0);
  CHECK(unlimited.reserve(1 << 30).count() == 0);
  RateLimiter r(1'000'000);  // 1 MB/s
  CHECK(r.reserve(500'000).count() == 0);        // the first goes at once...
  const auto second = r.reserve(500'000);        // ...the next waits for the first's half second
  CHECK(second > std::chrono::milliseconds(400));
  CHECK(second <= std::chrono::milliseconds(500));
  const auto third = r.reserve(1);
  CHECK(third > std::chrono::milliseconds(900));
}
