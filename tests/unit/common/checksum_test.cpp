// Flexible-checksum algorithms against their published check values ("123456789") and S3's base64 form.

#include <catch2/catch.hpp>

#include <string>

#include "common/checksum.h"

using namespace granary;

namespace {
std::string b64(ChecksumAlgorithm a, std::string_view data, std::size_t split = 0) {
  Checksum c(a);
  c.update(data.substr(0, split));  // incremental updates give the same digest
  c.update(data.substr(split));
  return c.finishBase64();
}
std::string be(std::uint64_t v, int bytes) {
  std::string s(static_cast<std::size_t>(bytes), '\0');
  for (int i = bytes - 1; i >= 0; --i, v >>= 8) s[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
  return base64Encode(s.data(), s.size());
}
}  // namespace

TEST_CASE("checksum: CRC check values of 123456789", "[common]") {
  CHECK(b64(ChecksumAlgorithm::Crc32, "123456789") == be(0xCBF43926, 4));
  CHECK(b64(ChecksumAlgorithm::Crc32c, "123456789") == be(0xE3069283, 4));
  CHECK(b64(ChecksumAlgorithm::Crc64Nvme, "123456789") == be(0xAE8B14860A799888ull, 8));
  CHECK(b64(ChecksumAlgorithm::Crc32, "") == "AAAAAA==");
}

TEST_CASE("checksum: digests and splits", "[common]") {
  const std::string text = "The quick brown fox jumps over the lazy dog";
  CHECK(b64(ChecksumAlgorithm::Sha1, text) == "L9ThxnotKPzthJ7hu3bnORuT6xI=");
  CHECK(b64(ChecksumAlgorithm::Sha256, text) == "16j7swfXgJRpypq8sAguT41WUeRtPNt2LQLQvzfJ5ZI=");
  CHECK(b64(ChecksumAlgorithm::Md5, text) == "nhB9nTcrtoJr2B01QqQZ1g==");
  std::string big(100'003, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  for (auto a : {ChecksumAlgorithm::Crc32, ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Crc64Nvme})
    for (std::size_t split : {std::size_t{1}, std::size_t{7}, std::size_t{4096}, std::size_t{99'999}})
      CHECK(b64(a, big, split) == b64(a, big));
}

TEST_CASE("checksum: header names and base64 shapes", "[common]") {
  CHECK(checksumFromHeader("x-amz-checksum-crc32c") == ChecksumAlgorithm::Crc32c);
  CHECK(checksumFromHeader("x-amz-checksum-crc64nvme") == ChecksumAlgorithm::Crc64Nvme);
  CHECK_FALSE(checksumFromHeader("x-amz-checksum-algorithm").has_value());
  CHECK(isBase64Of("nhB9nTcrtoJr2B01QqQZ1g==", 16));
  CHECK_FALSE(isBase64Of("nhB9nTcrtoJr2B01QqQZ1g=", 16));
  CHECK_FALSE(isBase64Of("nhB9nTcrtoJr2B01QqQZ1g!=", 16));
  CHECK(isBase64Of("AAAAAA==", 4));
}
