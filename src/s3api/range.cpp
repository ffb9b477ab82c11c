#include "s3api/range.h"

#include <algorithm>
#include <limits>

namespace granary::s3api {
namespace {
/// Exact decimal digits (Content-Range from a backend): at most 19, no overflow.
bool parseNumber(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = v;
  return true;
}

/// A byte position in a client's Range: any number of digits; values past 2^64-1 saturate (RFC 9110
/// section 14.1.1: a position past the end means the end, so only its size relative to the object's
/// matters). Leading zeros are digits like any other.
bool parsePosition(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 1024) return false;
  constexpr std::uint64_t kMax = ~std::uint64_t{0};
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    const auto d = static_cast<std::uint64_t>(c - '0');
    v = v > (kMax - d) / 10 ? kMax : v * 10 + d;
  }
  out = v;
  return true;
}
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

RangeParse parseRange(std::string_view header, ByteRange& out) {
  out = {};
  header = trim(header);
  constexpr std::string_view kPrefix = "bytes=";
  if (header.substr(0, kPrefix.size()) != kPrefix) return RangeParse::Ignore;
  std::string_view spec = trim(header.substr(kPrefix.size()));
  if (spec.find(',') != std::string_view::npos) return RangeParse::MultiRange;
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeParse::Ignore;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  std::uint64_t x = 0, y = 0;
  if (a.empty()) {
    if (!parsePosition(b, y)) return RangeParse::Ignore;
    out.suffix = y;
    return RangeParse::Ok;
  }
  if (!parsePosition(a, x)) return RangeParse::Ignore;
  out.first = x;
  if (b.empty()) return RangeParse::Ok;
  if (!parsePosition(b, y) || y < x) return RangeParse::Ignore;
  out.last = y;
  return RangeParse::Ok;
}

std::string canonicalRange(const ByteRange& r) {
  constexpr std::uint64_t kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (r.suffix) return "bytes=-" + std::to_string(std::min(*r.suffix, kMax));
  std::string out = "bytes=" + std::to_string(std::min(r.first.value_or(0), kMax)) + "-";
  if (r.last && *r.last < kMax) out += std::to_string(*r.last);
  return out;
}

std::optional<ResolvedRange> resolveRange(const ByteRange& r, std::uint64_t size) {
  if (r.suffix) {
    if (*r.suffix == 0 || size == 0) return std::nullopt;
    std::uint64_t n = *r.suffix < size ? *r.suffix : size;
    return ResolvedRange{size - n, n};
  }
  if (!r.first || *r.first >= size) return std::nullopt;
  std::uint64_t last = r.last && *r.last < size ? *r.last : size - 1;
  return ResolvedRange{*r.first, last - *r.first + 1};
}

}  // namespace granary::s3api

namespace granary::s3api {

std::optional<ContentRange> parseContentRange(std::string_view v) {
  v = trim(v);
  constexpr std::string_view kPrefix = "bytes ";
  if (v.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  v.remove_prefix(kPrefix.size());
  auto dash = v.find('-'), slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash) return std::nullopt;
  ContentRange cr;
  if (!parseNumber(v.substr(0, dash), cr.first) || !parseNumber(v.substr(dash + 1, slash - dash - 1), cr.last) ||
      cr.last < cr.first)
    return std::nullopt;
  std::string_view total = v.substr(slash + 1);
  if (total != "*") {
    std::uint64_t t = 0;
    if (!parseNumber(total, t) || cr.last >= t) return std::nullopt;
    cr.total = t;
  }
  return cr;
}

RangeFix planRangeFix(const ByteRange& requested, unsigned status, std::string_view contentRange,
                      std::optional<std::uint64_t> contentLength) {
  RangeFix fix;
  // What the backend body covers, as [first, last] of an object of size total.
  std::uint64_t first = 0, total = 0;
  if (status == 200) {
    if (!contentLength) return fix;
    total = *contentLength;
  } else if (status == 206) {
    auto cr = parseContentRange(contentRange);
    if (!cr || !cr->total) return fix;
    first = cr->first;
    total = *cr->total;
    if (contentLength && *contentLength != cr->last - cr->first + 1) return fix;
  } else {
    return fix;
  }
  const std::uint64_t bodyLast = status == 200 ? (total == 0 ? 0 : total - 1) : parseContentRange(contentRange)->last;
  auto want = resolveRange(requested, total);
  if (!want) {
    fix.kind = RangeFix::Kind::Unsatisfiable;
    fix.total = total;
    return fix;
  }
  const std::uint64_t wantLast = want->offset + want->length - 1;
  if (want->offset < first || wantLast > bodyLast) {  // this body does not hold the requested bytes
    fix.kind = RangeFix::Kind::Refetch;
    fix.first = want->offset;
    fix.length = want->length;
    fix.total = total;
    return fix;
  }
  if (status == 206 && want->offset == first && wantLast == bodyLast) return fix;  // already exact
  fix.kind = RangeFix::Kind::Trim;
  fix.skip = want->offset - first;
  fix.length = want->length;
  fix.total = total;
  fix.first = want->offset;
  return fix;
}

}  // namespace granary::s3api
