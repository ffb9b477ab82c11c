// Fuzz target: HTTP ranges as s3api reads them (src/s3api/range.h): parseRange, resolveRange,
// canonicalRange, parseContentRange and planRangeFix, with the properties the proxy relies on (a resolved
// range lies inside the object; a Trim stays inside the backend's body; a Refetch inside the object).
//
// Input: u8 status selector, u64 object size, u8 flags, u64 backend Content-Length, then
// "<Range header>\n<Content-Range header>" (see corpus/range/).

#include <optional>
#include <string>

#include "fuzz_common.h"
#include "s3api/range.h"

using namespace granary::s3api;
using granary::fuzz::Input;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Input in(data, size);
  const std::uint8_t statusSel = in.u8();
  std::uint64_t objectSize = in.u64();
  const std::uint8_t flags = in.u8();
  if (flags & 1) objectSize &= 0xffff;  // small objects are the interesting ones
  std::optional<std::uint64_t> contentLength;
  const std::uint64_t cl = in.u64();
  if (flags & 2) contentLength = (flags & 4) ? (cl & 0xffff) : cl;
  const std::string range(in.line());
  const std::string contentRange(in.rest());

  ByteRange r;
  const RangeParse parsed = parseRange(range, r);
  if (parsed == RangeParse::Ok) {
    FUZZ_CHECK(r.suffix.has_value() != r.first.has_value(), "exactly one form");
    FUZZ_CHECK(!r.last || r.first, "a last position only with a first");
    FUZZ_CHECK(!r.last || *r.last >= *r.first, "last >= first");
    // The canonical form the proxy forwards must read back as a range resolving to the same bytes for
    // any object smaller than 2^63.
    const std::string canon = canonicalRange(r);
    ByteRange again;
    FUZZ_CHECK(parseRange(canon, again) == RangeParse::Ok, canon);
    const std::uint64_t probe = objectSize & 0x7fffffffffffffffull;
    const auto a = resolveRange(r, probe), b = resolveRange(again, probe);
    FUZZ_CHECK(a.has_value() == b.has_value(), canon);
    if (a) FUZZ_CHECK(a->offset == b->offset && a->length == b->length, canon);
  }

  const auto cr = parseContentRange(contentRange);
  if (cr) {
    FUZZ_CHECK(cr->first <= cr->last);
    if (cr->total) FUZZ_CHECK(cr->last < *cr->total);
  }
  // The proxy resolves and plans only ranges that parsed Ok (an Ignore may leave `first` set).
  if (parsed != RangeParse::Ok) return 0;

  if (const auto res = resolveRange(r, objectSize)) {
    FUZZ_CHECK(res->length > 0);
    FUZZ_CHECK(res->offset < objectSize && res->length <= objectSize - res->offset, "inside the object");
    if (r.first) FUZZ_CHECK(res->offset == *r.first);
    if (r.suffix) FUZZ_CHECK(res->offset + res->length == objectSize);
  } else {
    FUZZ_CHECK(objectSize == 0 || (r.suffix && *r.suffix == 0) || (r.first && *r.first >= objectSize),
               "unsatisfiable only when it is");
  }

  static constexpr unsigned kStatuses[] = {200, 206, 200, 206, 416, 304, 0, 500};
  const unsigned status = kStatuses[statusSel % 8];
  const RangeFix fix = planRangeFix(r, status, contentRange, contentLength);
  switch (fix.kind) {
    case RangeFix::Kind::PassThrough:
      break;
    case RangeFix::Kind::Unsatisfiable:
      FUZZ_CHECK(status == 200 || status == 206);
      break;
    case RangeFix::Kind::Trim: {
      FUZZ_CHECK(status == 200 || status == 206);
      FUZZ_CHECK(fix.length > 0);
      // The backend's body: [bodyFirst, bodyFirst + bodyLen) of the object.
      std::uint64_t bodyFirst = 0, bodyLen = 0;
      if (status == 200) {
        FUZZ_CHECK(contentLength.has_value());
        bodyLen = *contentLength;
      } else {
        FUZZ_CHECK(cr && cr->total, "a 206 is trimmed only with a complete Content-Range");
        bodyFirst = cr->first;
        bodyLen = cr->last - cr->first + 1;
      }
      FUZZ_CHECK(fix.skip <= bodyLen && fix.length <= bodyLen - fix.skip, "Trim inside the body");
      FUZZ_CHECK(fix.first == bodyFirst + fix.skip);
      FUZZ_CHECK(fix.first < fix.total && fix.length <= fix.total - fix.first, "Trim inside the object");
      break;
    }
    case RangeFix::Kind::Refetch:
      FUZZ_CHECK(status == 200 || status == 206);
      FUZZ_CHECK(fix.length > 0);
      FUZZ_CHECK(fix.first < fix.total && fix.length <= fix.total - fix.first, "Refetch inside the object");
      break;
  }
  return 0;
}
