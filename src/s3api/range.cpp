#include "s3api/range.h"

#include <limits>

namespace granary::s3api {
namespace {
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
  if (spec.find(',') != std::string_view::npos) return RangeParse::Ignore;
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return RangeParse::Ignore;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  std::uint64_t x = 0, y = 0;
  if (a.empty()) {
    if (!parseNumber(b, y)) return RangeParse::Ignore;
    out.suffix = y;
    return RangeParse::Ok;
  }
  if (!parseNumber(a, x)) return RangeParse::Ignore;
  out.first = x;
  if (b.empty()) return RangeParse::Ok;
  if (!parseNumber(b, y) || y < x) return RangeParse::Ignore;
  out.last = y;
  return RangeParse::Ok;
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
