#pragma once
// The object checksums of S3's flexible-checksum API (x-amz-checksum-crc32, -crc32c, -crc64nvme, -sha1,
// -sha256) and Content-MD5, computed incrementally over a body as it streams. Values are base64 of the
// big-endian digest, as S3 sends and expects them.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/crypto.h"

namespace granary {

enum class ChecksumAlgorithm { Crc32, Crc32c, Crc64Nvme, Sha1, Sha256, Md5 };

/// "x-amz-checksum-crc32" (lower case) -> Crc32; nullopt for any other name (Md5 has no such header).
std::optional<ChecksumAlgorithm> checksumFromHeader(std::string_view lowerName);
/// "CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "MD5" (as S3's error messages name them).
std::string_view checksumName(ChecksumAlgorithm a);

class Checksum {
 public:
  explicit Checksum(ChecksumAlgorithm a);
  void update(const void* data, std::size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// Base64 of the digest; the object is not reusable afterwards.
  std::string finishBase64();
  ChecksumAlgorithm algorithm() const { return alg_; }

 private:
  ChecksumAlgorithm alg_;
  std::uint64_t crc_ = 0;
  std::optional<Digest> digest_;  // SHA-1 / SHA-256 / MD5 through OpenSSL
};

/// Whether `b64` is base64 of exactly `bytes` bytes (Content-MD5 must be 16).
bool isBase64Of(std::string_view b64, std::size_t bytes);

}  // namespace granary
