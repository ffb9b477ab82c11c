#pragma once
// What the cache keeps of an object besides its bytes: size, ETag, the response headers to replay
// (content type, user metadata, ...), and when the backend last vouched for it. Opaque to the cache
// except for its byte form; s3api decides which headers belong here.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace granary::cache {

struct ObjectMeta {
  std::uint64_t size = 0;
  std::string etag;  // as the backend sent it, quotes included
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
  std::int64_t validatedAtMs = 0;  // system clock, when the backend last confirmed this version
  /// Read back from disk (written by an earlier run): revalidated once before use, since a crash may
  /// have lost the journal record of an invalidation.
  bool fromDisk = false;
  /// The bucket's epoch (ChunkCache::bucketEpoch) read before the backend was asked: a later
  /// whole-bucket invalidation makes this metadata need revalidation. Not persisted.
  std::uint64_t bucketEpoch = 0;
};

std::string serializeMeta(const ObjectMeta& m);
/// nullopt when the bytes are not a serialized ObjectMeta.
std::optional<ObjectMeta> parseMeta(std::string_view s);

}  // namespace granary::cache
