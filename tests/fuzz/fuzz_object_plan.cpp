// Fuzz target: the object planner (src/s3api/object_plan.h), which reads client headers (If-Match,
// If-None-Match, If-Modified-Since, If-Unmodified-Since, Range) and query parameters (partNumber,
// response-*) against an object's metadata. Properties: the plan's bytes lie inside the object (and inside
// the located part); a 206 says which bytes in Content-Range and a Content-Length that matches; no header
// of the plan carries a control byte; an error is one S3 answers a read with.
//
// Input: u8 flags, u64 object size, u64 part offset, u64 part length, u8 parts count, then lines: Range,
// If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since, partNumber, response-content-type,
// ETag, Last-Modified (see corpus/object_plan/).

#include <optional>
#include <string>

#include "fuzz_common.h"
#include "s3api/object_plan.h"

using namespace granary::s3api;
using granary::fuzz::Input;

namespace {

bool clean(const std::string& v) {
  for (const char c : v)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

void checkPlan(const ObjectPlan& plan, std::uint64_t size, bool head, const PartLocation& part, bool partAsked) {
  FUZZ_CHECK(plan.status == 200 || plan.status == 206 || plan.status == 304, std::to_string(plan.status));
  for (const auto& [name, value] : plan.headers) FUZZ_CHECK(clean(name) && clean(value), name);
  if (head || plan.status == 304) FUZZ_CHECK(!plan.body, "no bytes for HEAD or 304");
  if (plan.body) {
    FUZZ_CHECK(plan.body->length > 0);
    FUZZ_CHECK(plan.body->offset < size && plan.body->length <= size - plan.body->offset, "inside the object");
    const std::string* cl = plan.header("content-length");
    FUZZ_CHECK(cl && *cl == std::to_string(plan.body->length), "Content-Length is the body's");
  }
  if (plan.status == 206 && plan.body) {
    const std::string* cr = plan.header("content-range");
    const std::string want = "bytes " + std::to_string(plan.body->offset) + "-" +
                             std::to_string(plan.body->offset + plan.body->length - 1) + "/" + std::to_string(size);
    FUZZ_CHECK(cr && *cr == want, want);
  }
  if (partAsked && part.range && plan.body && plan.status == 206)
    FUZZ_CHECK(plan.body->offset == part.range->offset && plan.body->length == part.range->length, "the part");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t flags = in.u8();
  std::uint64_t objectSize = in.u64();
  if (flags & 1) objectSize &= 0xffff;  // small objects are the interesting ones
  PartLocation part;
  const std::uint64_t partOffset = in.u64() & 0xffff, partLength = in.u64() & 0xffff;
  const std::uint8_t partsCount = in.u8();
  if (flags & 2) part.range = ResolvedRange{partOffset, partLength};
  if (flags & 4) part.partsCount = partsCount;

  static constexpr const char* kHeaders[] = {"range", "if-match", "if-none-match", "if-modified-since",
                                             "if-unmodified-since"};
  granary::sigv4::HeaderList headers;
  for (const char* name : kHeaders)
    if (const std::string v(in.line()); !v.empty()) headers.emplace_back(name, v);
  granary::QueryParams query;
  if (const std::string v(in.line()); !v.empty()) query.emplace_back("partNumber", v);
  if (const std::string v(in.line()); !v.empty()) query.emplace_back("response-content-type", v);
  // The object's metadata came from the backend through the HTTP parser: its values hold no CR, LF or NUL.
  std::string etag(in.line());
  if (!clean(etag)) etag = "\"e\"";
  granary::sigv4::HeaderList objectHeaders{{"content-type", "application/octet-stream"}};
  if (const std::string v(in.line()); !v.empty() && clean(v)) objectHeaders.emplace_back("last-modified", v);

  const bool head = (flags & 8) != 0;
  const ObjectRequest req{head, (flags & 16) != 0, headers, query};
  const ObjectFacts facts{objectSize, etag, objectHeaders};
  const auto plan = planObject(req, facts, part);
  if (plan) {
    checkPlan(*plan, objectSize, head, part, !query.empty() && query.front().first == "partNumber");
    return 0;
  }
  const S3Error e = plan.error().error;
  FUZZ_CHECK(e == S3Error::PreconditionFailed || e == S3Error::InvalidRange || e == S3Error::InvalidPartNumber ||
                 e == S3Error::InvalidRequest || e == S3Error::InternalError || e == S3Error::InvalidArgument,
             std::string(errorInfo(e).code));
  if (e == S3Error::InvalidRange) {
    FUZZ_CHECK(!headers.empty() && headers.front().first == "range", "InvalidRange only for a Range");
    FUZZ_CHECK(unsatisfiedContentRange(plan.error()) == "bytes */" + std::to_string(objectSize));
  }
  for (const auto& [name, value] : plan.error().extra) FUZZ_CHECK(clean(value), name);
  return 0;
}
