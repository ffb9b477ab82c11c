#include "cache/chunk_source.h"

#include <algorithm>

namespace granary::cache {

std::uint64_t ObjectId::chunkLength(std::uint32_t index) const {
  return std::min<std::uint64_t>(chunkSize, size - chunkOffset(index));
}

std::string ObjectId::chunkKey(std::uint32_t index) const {
  std::string version = etag + "#" + std::to_string(size);
  if (!versionId.empty()) version += "@" + versionId;
  return encodeKey({backend, bucket, key, std::move(version), index});
}

std::string ObjectId::metaKey() const {
  return encodeKey({backend, bucket, key, versionId.empty() ? std::string() : "version:" + versionId, kMetaIndex});
}

}  // namespace granary::cache
