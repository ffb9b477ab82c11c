#pragma once
// HTTP Range as S3 reads it: one range "bytes=a-b", "bytes=a-" or "bytes=-n".

#include <cstdint>
#include <optional>
#include <string>
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
  Ignore,      // malformed ("bytes=5-1", "items=0-1"): S3 ignores it and returns the whole object
  MultiRange,  // "bytes=0-1,5-6": answered as the backend answers it
};

/// Parses a Range header.
RangeParse parseRange(std::string_view header, ByteRange& out);

struct ResolvedRange {
  std::uint64_t offset;
  std::uint64_t length;
};

/// The range as a header value a backend parses the same way: positions past 2^63-1 (any object ends
/// before them) are written as that, and a last position that large as an open end.
std::string canonicalRange(const ByteRange& r);

/// Resolves against an object size. nullopt = unsatisfiable (416 InvalidRange, Content-Range: bytes */size).
std::optional<ResolvedRange> resolveRange(const ByteRange& r, std::uint64_t size);

}  // namespace granary::s3api

namespace granary::s3api {

/// "bytes a-b/total" (total may be "*"); nullopt when malformed.
struct ContentRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::optional<std::uint64_t> total;
};
std::optional<ContentRange> parseContentRange(std::string_view v);

/// How to turn a backend answer into exactly the range the client asked for. Backends may ignore a
/// Range (200 with the whole object) or answer a wider one (s3rver returns everything for "bytes=0-0").
struct RangeFix {
  /// Refetch: the body does not hold the requested bytes (s3rver answers "bytes=-100" with the first
  /// 100 bytes); ask again for the absolute range [first, first+length).
  enum class Kind { PassThrough, Trim, Unsatisfiable, Refetch } kind = Kind::PassThrough;
  std::uint64_t skip = 0;    // Trim: bytes of the backend body to drop first
  std::uint64_t length = 0;  // Trim: bytes to forward after that
  std::uint64_t total = 0;   // object size (Content-Range of a Trim or of a 416)
  std::uint64_t first = 0;   // Trim, Refetch: the client-visible range
};

/// @param requested the client's parsed Range; @param status the backend's status;
/// @param contentRange the backend's Content-Range header (may be empty); @param contentLength its body length.
RangeFix planRangeFix(const ByteRange& requested, unsigned status, std::string_view contentRange,
                      std::optional<std::uint64_t> contentLength);

}  // namespace granary::s3api
