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

TEST_CASE("Malformed headers are ignored, as S3 does, and multi-range is told apart", "[unit][range]") {
  ByteRange r;
  CHECK(parseRange("bytes=0-1,3-4", r) == RangeParse::MultiRange);
  for (auto h : {"bytes=5-1", "bytes=a-b", "items=0-1", "bytes=", "bytes=-", "bytes 0-1",
                 "bytes=99999999999999999999-1", "bytes=1-2x"}) {
    INFO(h);
    CHECK(parseRange(h, r) == RangeParse::Ignore);
  }
  CHECK(parseRange(" bytes=1-2 ", r) == RangeParse::Ok);
}

TEST_CASE("Positions of any length: past 2^64-1 they saturate, as RFC 9110 reads them", "[unit][range]") {
  // S3 and RFC 9110 answer these; they were once ignored (200 and the whole object).
  auto whole = resolve("bytes=0-99999999999999999999", 1000);
  CHECK((whole && whole->offset == 0 && whole->length == 1000));
  CHECK_FALSE(resolve("bytes=99999999999999999999-", 1000));
  auto suffix = resolve("bytes=-99999999999999999999", 1000);
  CHECK((suffix && suffix->offset == 0 && suffix->length == 1000));
  auto zeros = resolve("bytes=000000000000000000000001-00000000000000000000000002", 1000);
  CHECK((zeros && zeros->offset == 1 && zeros->length == 2));
  auto max = resolve("bytes=18446744073709551615-", 1000);
  CHECK_FALSE(max);
  // Forwarded in a form every backend parses: nothing past 2^63-1.
  ByteRange r;
  REQUIRE(parseRange("bytes=5-99999999999999999999", r) == RangeParse::Ok);
  CHECK(canonicalRange(r) == "bytes=5-");
  REQUIRE(parseRange("bytes=99999999999999999999-", r) == RangeParse::Ok);
  CHECK(canonicalRange(r) == "bytes=9223372036854775807-");
  REQUIRE(parseRange("bytes=-99999999999999999999", r) == RangeParse::Ok);
  CHECK(canonicalRange(r) == "bytes=-9223372036854775807");
  REQUIRE(parseRange("bytes=007-9", r) == RangeParse::Ok);
  CHECK(canonicalRange(r) == "bytes=7-9");
}

TEST_CASE("Content-Range parsing", "[unit][range]") {
  auto cr = parseContentRange("bytes 10-19/100");
  REQUIRE(cr);
  CHECK((cr->first == 10 && cr->last == 19 && cr->total == 100u));
  CHECK(parseContentRange("bytes 0-0/*"));
  CHECK_FALSE(parseContentRange("bytes 5-1/100"));
  CHECK_FALSE(parseContentRange("bytes 0-100/100"));
  CHECK_FALSE(parseContentRange("items 0-1/2"));
}

TEST_CASE("a backend answer wider than the requested range is trimmed to it", "[unit][range]") {
  ByteRange first;
  REQUIRE(parseRange("bytes=0-0", first) == RangeParse::Ok);
  SECTION("206 with the whole object (s3rver's answer to bytes=0-0)") {
    auto f = planRangeFix(first, 206, "bytes 0-99/100", 100);
    CHECK(f.kind == RangeFix::Kind::Trim);
    CHECK((f.skip == 0 && f.length == 1 && f.first == 0 && f.total == 100));
  }
  SECTION("200: the Range was ignored") {
    ByteRange suffix;
    REQUIRE(parseRange("bytes=-10", suffix) == RangeParse::Ok);
    auto f = planRangeFix(suffix, 200, "", 100);
    CHECK(f.kind == RangeFix::Kind::Trim);
    CHECK((f.skip == 90 && f.length == 10 && f.first == 90));
  }
  SECTION("an exact 206 passes through") {
    CHECK(planRangeFix(first, 206, "bytes 0-0/100", 1).kind == RangeFix::Kind::PassThrough);
  }
  SECTION("a range past the end answered with content -> 416 from Granary") {
    ByteRange past;
    REQUIRE(parseRange("bytes=500-", past) == RangeParse::Ok);
    auto f = planRangeFix(past, 200, "", 100);
    CHECK(f.kind == RangeFix::Kind::Unsatisfiable);
    CHECK(f.total == 100);
  }
  SECTION("an answer that misses the requested bytes -> refetch the absolute range") {
    ByteRange suffix;
    REQUIRE(parseRange("bytes=-100", suffix) == RangeParse::Ok);
    auto f = planRangeFix(suffix, 206, "bytes 0-99/1000", 100);  // s3rver's answer to a suffix range
    CHECK(f.kind == RangeFix::Kind::Refetch);
    CHECK((f.first == 900 && f.length == 100));
    ByteRange mid;
    REQUIRE(parseRange("bytes=10-50", mid) == RangeParse::Ok);
    CHECK(planRangeFix(mid, 206, "bytes 20-30/100", 11).kind == RangeFix::Kind::Refetch);
  }
  SECTION("an unrelated answer is not touched") {
    ByteRange mid;
    REQUIRE(parseRange("bytes=10-50", mid) == RangeParse::Ok);
    CHECK(planRangeFix(mid, 404, "", 10).kind == RangeFix::Kind::PassThrough);
    CHECK(planRangeFix(mid, 206, "garbage", 10).kind == RangeFix::Kind::PassThrough);
  }
}
