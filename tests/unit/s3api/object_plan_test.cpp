#include <catch2/catch.hpp>

#include <string>

#include "s3api/object_plan.h"

using namespace granary;
using namespace granary::s3api;

namespace {

constexpr std::string_view kEtag = "\"0123456789abcdef0123456789abcdef\"";
constexpr std::string_view kModified = "Wed, 01 Jan 2025 12:00:00 GMT";
constexpr std::string_view kBefore = "Tue, 31 Dec 2024 12:00:00 GMT";
constexpr std::string_view kAfter = "Thu, 02 Jan 2025 12:00:00 GMT";

/// One request against one object (100 bytes unless told), planned.
struct Case {
  sigv4::HeaderList headers;
  QueryParams query;
  bool head = false;
  bool anonymous = false;
  std::uint64_t size = 100;
  std::string etag{kEtag};
  sigv4::HeaderList stored{{"content-type", "text/plain"}, {"last-modified", std::string(kModified)},
                           {"x-amz-meta-a", "1"}};
  PartLocation part;

  S3Result<ObjectPlan> plan() const {
    const ObjectRequest req{head, anonymous, headers, query};
    const ObjectFacts facts{size, etag, stored};
    return planObject(req, facts, part);
  }
};

std::string field(const S3Failure& f, std::string_view name) {
  for (const auto& [k, v] : f.extra)
    if (k == name) return v;
  return "<absent>";
}

std::string header(const ObjectPlan& p, std::string_view name) {
  const std::string* v = p.header(name);
  return v ? *v : "<absent>";
}

}  // namespace

TEST_CASE("A plain GET is the whole object with the object's headers", "[unit][object_plan]") {
  const auto p = Case{}.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
  REQUIRE(p->body);
  CHECK((p->body->offset == 0 && p->body->length == 100));
  CHECK(header(*p, "content-length") == "100");
  CHECK(header(*p, "accept-ranges") == "bytes");
  CHECK(header(*p, "etag") == kEtag);
  CHECK(header(*p, "content-type") == "text/plain");
  CHECK(header(*p, "x-amz-meta-a") == "1");
  CHECK(header(*p, "last-modified") == kModified);
  CHECK(header(*p, "content-range") == "<absent>");
  CHECK(header(*p, "x-amz-mp-parts-count") == "<absent>");
}

TEST_CASE("HEAD plans the same headers and no body", "[unit][object_plan]") {
  Case c;
  c.head = true;
  const auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
  CHECK_FALSE(p->body);
  CHECK(header(*p, "content-length") == "100");
  c.headers = {{"range", "bytes=10-19"}};
  const auto r = c.plan();
  REQUIRE(r.ok());
  CHECK(r->status == 206);
  CHECK_FALSE(r->body);
  CHECK(header(*r, "content-length") == "10");
  CHECK(header(*r, "content-range") == "bytes 10-19/100");
}

TEST_CASE("The ETag header is the object's, once", "[unit][object_plan]") {
  Case c;
  c.stored.emplace_back("etag", "\"stale\"");
  const auto p = c.plan();
  REQUIRE(p.ok());
  int etags = 0;
  for (const auto& [name, value] : p->headers) etags += name == "etag" ? 1 : 0;
  CHECK(etags == 1);
  CHECK(header(*p, "etag") == kEtag);
}

TEST_CASE("If-Match and If-Unmodified-Since fail with 412 and name the condition", "[unit][object_plan]") {
  for (const bool head : {false, true}) {
    Case c;
    c.head = head;
    c.headers = {{"if-match", "\"other\""}};
    auto p = c.plan();
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().error == S3Error::PreconditionFailed);
    CHECK(field(p.error(), "Condition") == "If-Match");

    c.headers = {{"if-unmodified-since", std::string(kBefore)}};
    p = c.plan();
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().error == S3Error::PreconditionFailed);
    CHECK(field(p.error(), "Condition") == "If-Unmodified-Since");

    c.headers = {{"if-unmodified-since", std::string(kAfter)}};
    CHECK(c.plan().ok());
    c.headers = {{"if-match", std::string(kEtag)}};
    CHECK(c.plan().ok());
    c.headers = {{"if-match", "\"a\", W/" + std::string(kEtag)}};  // a list; weak tags by their opaque part
    CHECK(c.plan().ok());
    c.headers = {{"if-match", "*"}};
    CHECK(c.plan().ok());
  }
}

TEST_CASE("If-Match that holds beats a failing If-Unmodified-Since", "[unit][object_plan]") {
  Case c;
  c.headers = {{"if-match", std::string(kEtag)}, {"if-unmodified-since", std::string(kBefore)}};
  const auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
}

TEST_CASE("If-None-Match and If-Modified-Since answer 304 to GET and HEAD alike", "[unit][object_plan]") {
  for (const bool head : {false, true}) {
    Case c;
    c.head = head;
    c.headers = {{"if-none-match", std::string(kEtag)}};
    auto p = c.plan();
    REQUIRE(p.ok());
    CHECK(p->status == 304);
    CHECK_FALSE(p->body);
    CHECK(header(*p, "etag") == kEtag);
    CHECK(header(*p, "content-length") == "<absent>");
    CHECK(header(*p, "accept-ranges") == "<absent>");

    c.headers = {{"if-modified-since", std::string(kModified)}};
    p = c.plan();
    REQUIRE(p.ok());
    CHECK(p->status == 304);
    c.headers = {{"if-modified-since", std::string(kBefore)}};
    p = c.plan();
    REQUIRE(p.ok());
    CHECK(p->status == 200);
    c.headers = {{"if-modified-since", "not a date"}};  // ignored
    p = c.plan();
    REQUIRE(p.ok());
    CHECK(p->status == 200);
  }
}

TEST_CASE("If-None-Match that does not match beats If-Modified-Since", "[unit][object_plan]") {
  Case c;
  c.headers = {{"if-none-match", "\"other\""}, {"if-modified-since", std::string(kAfter)}};
  const auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
}

TEST_CASE("412 comes before 304, and both before Range", "[unit][object_plan]") {
  Case c;
  c.headers = {{"if-match", "\"other\""}, {"if-none-match", std::string(kEtag)}};
  auto p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().error == S3Error::PreconditionFailed);
  c.headers = {{"if-none-match", std::string(kEtag)}, {"range", "bytes=500-"}};
  p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 304);
  c.headers = {{"if-match", "\"other\""}, {"range", "bytes=500-"}};
  p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().error == S3Error::PreconditionFailed);
}

TEST_CASE("Without a Last-Modified, date conditions do not apply", "[unit][object_plan]") {
  Case c;
  c.stored = {};
  c.headers = {{"if-unmodified-since", std::string(kBefore)}, {"if-modified-since", std::string(kAfter)}};
  const auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
}

TEST_CASE("Ranges: closed, open, suffix, clipped", "[unit][object_plan]") {
  struct Want {
    const char* range;
    std::uint64_t offset, length;
    const char* contentRange;
  };
  for (const Want& w : {Want{"bytes=10-19", 10, 10, "bytes 10-19/100"}, Want{"bytes=90-", 90, 10, "bytes 90-99/100"},
                        Want{"bytes=-5", 95, 5, "bytes 95-99/100"}, Want{"bytes=-500", 0, 100, "bytes 0-99/100"},
                        Want{"bytes=50-5000", 50, 50, "bytes 50-99/100"}, Want{"bytes=0-0", 0, 1, "bytes 0-0/100"}}) {
    INFO(w.range);
    Case c;
    c.headers = {{"range", w.range}};
    const auto p = c.plan();
    REQUIRE(p.ok());
    CHECK(p->status == 206);
    REQUIRE(p->body);
    CHECK(p->body->offset == w.offset);
    CHECK(p->body->length == w.length);
    CHECK(header(*p, "content-range") == w.contentRange);
    CHECK(header(*p, "content-length") == std::to_string(w.length));
  }
}

TEST_CASE("A Range past the end is 416 InvalidRange with Content-Range bytes */size", "[unit][object_plan]") {
  for (const char* range : {"bytes=100-", "bytes=100-200", "bytes=-0"}) {
    INFO(range);
    Case c;
    c.headers = {{"range", range}};
    const auto p = c.plan();
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().error == S3Error::InvalidRange);
    CHECK(field(p.error(), "RangeRequested") == range);
    CHECK(field(p.error(), "ActualObjectSize") == "100");
    CHECK(unsatisfiedContentRange(p.error()) == "bytes */100");
  }
  CHECK(unsatisfiedContentRange(S3Failure{S3Error::InvalidRange, {}, {{"ActualObjectSize", ""}}}).empty());
  CHECK(unsatisfiedContentRange(S3Failure{S3Error::NoSuchKey, {}, {}}).empty());
}

TEST_CASE("Multiple and malformed ranges are ignored: the whole object", "[unit][object_plan]") {
  for (const char* range : {"bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=x-"}) {
    INFO(range);
    Case c;
    c.headers = {{"range", range}};
    const auto p = c.plan();
    REQUIRE(p.ok());
    CHECK(p->status == 200);
    CHECK(header(*p, "content-range") == "<absent>");
    REQUIRE(p->body);
    CHECK(p->body->length == 100);
  }
}

TEST_CASE("A zero-length object: 200 with no body; any Range is unsatisfiable", "[unit][object_plan]") {
  Case c;
  c.size = 0;
  auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
  CHECK_FALSE(p->body);
  CHECK(header(*p, "content-length") == "0");
  c.headers = {{"range", "bytes=0-"}};
  p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().error == S3Error::InvalidRange);
  CHECK(unsatisfiedContentRange(p.error()) == "bytes */0");
  c.headers = {};
  c.query = {{"partNumber", "1"}};
  c.part.range = ResolvedRange{0, 0};  // the one part of an empty object
  p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
  CHECK_FALSE(p->body);
  CHECK(header(*p, "content-range") == "<absent>");
}

TEST_CASE("partNumber located by the caller is a 206 of the part", "[unit][object_plan]") {
  Case c;
  c.query = {{"partNumber", "2"}};
  c.part.range = ResolvedRange{40, 40};
  c.part.partsCount = 3;
  auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 206);
  REQUIRE(p->body);
  CHECK((p->body->offset == 40 && p->body->length == 40));
  CHECK(header(*p, "content-range") == "bytes 40-79/100");
  CHECK(header(*p, "content-length") == "40");
  CHECK(header(*p, "x-amz-mp-parts-count") == "3");
  c.part.partsCount.reset();  // a count the caller does not know is not shown
  p = c.plan();
  REQUIRE(p.ok());
  CHECK(header(*p, "x-amz-mp-parts-count") == "<absent>");
  c.part.range = ResolvedRange{90, 20};  // past the end: never served
  p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().error == S3Error::InternalError);
}

TEST_CASE("partNumber not located: the whole object within the count, else InvalidPartNumber", "[unit][object_plan]") {
  Case c;  // a single-part ETag: one part
  c.query = {{"partNumber", "1"}};
  auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
  CHECK(header(*p, "content-range") == "<absent>");
  REQUIRE(p->body);
  CHECK(p->body->length == 100);
  c.query = {{"partNumber", "2"}};
  p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().error == S3Error::InvalidPartNumber);
  CHECK(field(p.error(), "PartNumberRequested") == "2");
  CHECK(field(p.error(), "ActualPartCount") == "1");

  c.etag = "\"0123456789abcdef0123456789abcdef-4\"";  // the ETag says 4 parts
  c.query = {{"partNumber", "4"}};
  CHECK(c.plan().ok());
  c.query = {{"partNumber", "5"}};
  p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(field(p.error(), "ActualPartCount") == "4");

  c.part.partsCount = 6;  // a count the backend showed wins over the ETag's, and is shown
  p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 200);
  CHECK(header(*p, "x-amz-mp-parts-count") == "6");
  for (const char* bad : {"0", "x", "+1", "-1", "1x", "", "99999999999999999999999"}) {
    INFO(bad);
    c.query = {{"partNumber", bad}};
    p = c.plan();
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().error == S3Error::InvalidPartNumber);
    CHECK(field(p.error(), "PartNumberRequested") == bad);
  }
  c.query = {{"partNumber", std::string("1\n2")}};  // never echoed with control bytes
  p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(field(p.error(), "PartNumberRequested").empty());
}

TEST_CASE("partNumber beside a Range is refused", "[unit][object_plan]") {
  Case c;
  c.query = {{"partNumber", "1"}};
  c.headers = {{"range", "bytes=0-1"}};
  const auto p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().error == S3Error::InvalidRequest);
}

TEST_CASE("Preconditions are checked before the part number", "[unit][object_plan]") {
  Case c;
  c.query = {{"partNumber", "7"}};
  c.headers = {{"if-none-match", std::string(kEtag)}};
  const auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 304);
}

TEST_CASE("response-* overrides set their headers when the value can be sent", "[unit][object_plan]") {
  Case c;
  c.query = {{"response-content-type", "application/x-custom"},
             {"response-content-disposition", "attachment; filename=\"x.bin\""},
             {"response-cache-control", "no-store"},
             {"response-expires", "Thu, 01 Jan 2026 00:00:00 GMT"},
             {"response-content-language", "en"},
             {"response-content-encoding", "identity"},
             {"versionId", "v1"}};
  auto p = c.plan();
  REQUIRE(p.ok());
  CHECK(header(*p, "content-type") == "application/x-custom");
  CHECK(header(*p, "content-disposition") == "attachment; filename=\"x.bin\"");
  CHECK(header(*p, "cache-control") == "no-store");
  CHECK(header(*p, "expires") == "Thu, 01 Jan 2026 00:00:00 GMT");
  CHECK(header(*p, "content-language") == "en");
  CHECK(header(*p, "content-encoding") == "identity");
  CHECK(header(*p, "versionid") == "<absent>");
  int types = 0;
  for (const auto& [name, value] : p->headers) types += name == "content-type" ? 1 : 0;
  CHECK(types == 1);

  c.query = {{"response-content-type", "text/plain\r\nSet-Cookie: a=1"}};  // never sent
  p = c.plan();
  REQUIRE(p.ok());
  CHECK(header(*p, "content-type") == "text/plain");
  CHECK(header(*p, "set-cookie") == "<absent>");

  c.query = {{"response-content-type", "text/html"}};  // a 304 carries them too
  c.headers = {{"if-none-match", "*"}};
  p = c.plan();
  REQUIRE(p.ok());
  CHECK(p->status == 304);
  CHECK(header(*p, "content-type") == "text/html");
}

TEST_CASE("response-* overrides on an anonymous request are S3's InvalidRequest", "[unit][object_plan]") {
  Case c;
  c.anonymous = true;
  CHECK(c.plan().ok());
  c.query = {{"response-content-type", "text/html"}};
  const auto p = c.plan();
  REQUIRE_FALSE(p.ok());
  CHECK(p.error().error == S3Error::InvalidRequest);
}

TEST_CASE("etagListMatches reads lists, weak tags and *", "[unit][object_plan]") {
  CHECK(etagListMatches("\"a\"", "\"a\""));
  CHECK(etagListMatches(" \"b\" , \"a\" ", "\"a\""));
  CHECK(etagListMatches("W/\"a\"", "\"a\""));
  CHECK(etagListMatches("*", "\"a\""));
  CHECK_FALSE(etagListMatches("\"b\"", "\"a\""));
  CHECK_FALSE(etagListMatches("", "\"a\""));
}

TEST_CASE("responseOverrideHeader maps the six parameters only", "[unit][object_plan]") {
  CHECK(responseOverrideHeader("response-content-type") == "content-type");
  CHECK(responseOverrideHeader("response-expires") == "expires");
  CHECK(responseOverrideHeader("response-x").empty());
  CHECK(responseOverrideHeader("partNumber").empty());
}
