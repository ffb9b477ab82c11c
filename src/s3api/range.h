#pragma once
// HTTP Range as S3 reads it: one range "bytes=a-b", "bytes=a-" or "bytes=-n".

#include <cstdint>
#include <optional>
#include <string_view>

namespace granary::s3api {

struct ByteRange {
  // Exactly one form: first/last (last may be open), or a suffix length.
  std::optional<std::uint64_t> first;
  std::optional<std::uint64_t> last;
  std::optional<std::uint64_t> suffix;
};

enum class RangeParse {
  Ok,
  Ignore,  // malformed or multi-range: S3 ignores the header and returns the whole object
};

/// Parses a Range header. Multi-range and malformed headers come back as Ignore (S3 serves 200 with
/// the whole object for those).
RangeParse parseRange(std::string_view header, ByteRange& out);

struct ResolvedRange {
  std::uint64_t offset;
  std::uint64_t length;
};

/// Resolves against an object size. nullopt = unsatisfiable (416 InvalidRange, Content-Range: bytes */size).
std::optional<ResolvedRange> resolveRange(const ByteRange& r, std::uint64_t size);

}  // namespace granary::s3api
