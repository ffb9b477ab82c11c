#include <catch2/catch.hpp>

#include "s3api/range.h"

using namespace granary::s3api;

namespace {
std::optional<ResolvedRange> resolve(std::string_view h, std::uint64_t size) {
  ByteRange r;
  REQUIRE(parseRange(h, r) == RangeParse::Ok);
  return resolveRange(r, size);
}
}  // namespace

TEST_CASE("Range forms resolve against the object size", "[unit][range]") {
  auto first = resolve("bytes=0-0", 100);
  CHECK((first && first->offset == 0 && first->length == 1));
  auto mid = resolve("bytes=10-19", 100);
  CHECK((mid && mid->offset == 10 && mid->length == 10));
  auto last = resolve("bytes=99-99", 100);
  CHECK((last && last->offset == 99 && last->length == 1));
  auto open = resolve("bytes=90-", 100);
  CHECK((open && open->offset == 90 && open->length == 10));
  auto clipped = resolve("bytes=50-1000", 100);
  CHECK((clipped && clipped->length == 50));
  auto suffix = resolve("bytes=-10", 100);
  CHECK((suffix && suffix->offset == 90 && suffix->length == 10));
  auto bigSuffix = resolve("bytes=-1000", 100);
  CHECK((bigSuffix && bigSuffix->offset == 0 && bigSuffix->length == 100));
}

TEST_CASE("Unsatisfiable ranges", "[unit][range]") {
  CHECK_FALSE(resolve("bytes=100-", 100));
  CHECK_FALSE(resolve("bytes=100-200", 100));
  CHECK_FALSE(resolve("bytes=-0", 100));
  CHECK_FALSE(resolve("bytes=0-", 0));
  CHECK_FALSE(resolve("bytes=-5", 0));
}

TEST_CASE("Malformed and multi-range headers are ignored, as S3 does", "[unit][range]") {
  ByteRange r;
  for (auto h : {"bytes=5-1", "bytes=a-b", "items=0-1", "bytes=0-1,3-4", "bytes=", "bytes=-", "bytes 0-1",
                 "bytes=99999999999999999999-"}) {
    INFO(h);
    CHECK(parseRange(h, r) == RangeParse::Ignore);
  }
  CHECK(parseRange(" bytes=1-2 ", r) == RangeParse::Ok);
}
